"""The development broker on its s3 engine (``make run``): a broker restart loses no queued job.

A job is requested while no worker runs, so its JobRequested record waits in the broker; the
broker is killed (SIGKILL) and started again on the same local S3 server; only then does a
worker start, and the job it finds there completes and is charged once. On memory storage the
same restart loses the record (tests/faults/test_restarts.py states so).
"""

from __future__ import annotations

import time
import uuid

import grpc
import httpx
from kafka import KafkaConsumer, TopicPartition

from services.common.grpc_util import channel
from services.common.pb.timbr.v1 import billing_pb2, billing_pb2_grpc
from services.common.settings import TOPIC_REQUESTED
from tests.conftest import TEST_PIPELINE, TEST_RATE_LIMITS
from tests.support.api import upload_ok
from tests.support.audio import tone_wav
from tests.support.faults import FaultStack, assert_ledger_balances, wait_terminal

SERVICE_TOKEN = uuid.uuid4().hex + uuid.uuid4().hex
GRANT = 100
# The worker starts after the restart: a group join (a few s on tansu) and a 2 s job.
ENDS_WITHIN_S = 45


def _queued_records(bootstrap: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        parts = [TopicPartition(TOPIC_REQUESTED, p) for p in consumer.partitions_for_topic(TOPIC_REQUESTED) or ()]
        return sum(consumer.end_offsets(parts).values()) if parts else 0
    finally:
        consumer.close()


def _until_queued(bootstrap: str, n: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while _queued_records(bootstrap) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {n} records on {TOPIC_REQUESTED} after {timeout_s} s")
        time.sleep(0.3)


def test_a_job_queued_across_a_broker_restart_is_delivered_and_completes(tmp_path):
    stack = FaultStack.on_free_ports(
        tmp_path, broker_storage="s3",
        worker_env={**TEST_PIPELINE, "TEST_PIPELINE_STEP_S": "0.2", "TIMBR_HEARTBEAT_S": "0.5"},
        # The sweeper must not be what ends the job: a queued job is left alone for 120 s.
        extra_env={**TEST_RATE_LIMITS, "TIMBR_SERVICE_TOKEN": SERVICE_TOKEN, "TIMBR_STALE_QUEUED_S": "120",
                   "TIMBR_SETTLE_INTERVAL_S": "0.5"})
    stack.start(worker=False)
    stack.supervise()
    bootstrap = f"127.0.0.1:{stack.kafka_port}"
    ch = channel(f"127.0.0.1:{stack.billing_port}", SERVICE_TOKEN)
    try:
        grpc.channel_ready_future(ch).result(timeout=30)
        billing = billing_pb2_grpc.BillingStub(ch)
        acc = billing.CreateAccount(billing_pb2.CreateAccountRequest(name="durable"), timeout=10).account_id
        headers = {"Authorization": billing.IssueToken(billing_pb2.IssueTokenRequest(account_id=acc), timeout=10).token}
        billing.GrantCredits(billing_pb2.GrantCreditsRequest(account_id=acc, credits=GRANT), timeout=10)
        with httpx.Client(base_url=stack.url, timeout=30) as api:
            file_id = upload_ok(api, headers, tone_wav(1.5))["file_id"]
            r = api.post("/v1/audio/enhance", headers=headers, json={"file_id": file_id})
            assert r.status_code == 200, r.text
            job_id = r.json()["job_id"]
            _until_queued(bootstrap, 1)

            stack.kill9("kafka", 1)
            deadline = time.monotonic() + 15  # the supervisor starts tansu again on the same bucket
            while stack.restarts["kafka"] < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert stack.restarts["kafka"] == 1
            assert _queued_records(bootstrap) >= 1  # the record outlived the broker
            assert api.get(f"/v1/jobs/{job_id}", headers=headers).json()["status"] == "queued"

            stack.start_worker()
            jobs = wait_terminal(api, headers, [job_id], ENDS_WITHIN_S)
        assert jobs[job_id]["status"] == "completed", jobs[job_id]
        assert_ledger_balances(billing, acc, GRANT, jobs)
    finally:
        ch.close()
        stack.stop()
