"""The development broker on its s3 engine (``make run``): neither a broker restart nor stopping
the whole stack loses a queued job.

A job is requested while no worker runs, so its JobRequested record waits in the broker; the
broker is killed (SIGKILL) and started again on the same local S3 server; then the whole stack
stops (as Ctrl-C on ``make run``) and a new one starts on the same folder; only then does a
worker start, and the job it finds there completes and is charged once. On memory storage the
broker restart alone loses the record (tests/faults/test_restarts.py states so). Below the
stack, records outlive a SIGKILL of both the broker and the S3 server.
"""

from __future__ import annotations

import time
import uuid

import grpc
import httpx
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.common.grpc_util import channel
from services.common.pb.timbr.v1 import billing_pb2, billing_pb2_grpc
from services.common.settings import TOPIC_REQUESTED
from tests.conftest import TEST_PIPELINE, TEST_RATE_LIMITS
from tests.support.api import upload_ok
from tests.support.audio import tone_wav
from tests.support.faults import FaultStack, assert_ledger_balances, wait_terminal
from tools.devbroker import free_port, start_broker, start_object_store, stop_object_store

SERVICE_TOKEN = uuid.uuid4().hex + uuid.uuid4().hex
GRANT = 100
# The worker starts after the restart: a group join (20-25 s on tansu) and a 2 s job.
ENDS_WITHIN_S = 60


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


def _stack(root):
    return FaultStack.on_free_ports(
        root, broker_storage="s3",
        worker_env={**TEST_PIPELINE, "TEST_PIPELINE_STEP_S": "0.2", "TIMBR_HEARTBEAT_S": "0.5"},
        # The sweeper must not be what ends the job: a queued job is left alone for 300 s.
        extra_env={**TEST_RATE_LIMITS, "TIMBR_SERVICE_TOKEN": SERVICE_TOKEN, "TIMBR_STALE_QUEUED_S": "300",
                   "TIMBR_SETTLE_INTERVAL_S": "0.5"})


def test_a_job_queued_across_a_broker_restart_and_a_stack_stop_is_delivered_and_completes(tmp_path):
    stack = _stack(tmp_path)
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
    finally:
        ch.close()
        stack.stop()  # every process, the S3 server too: what is left is the folder

    stack = _stack(tmp_path)  # new ports, the same folder, as the next `make run`
    stack.start(worker=False)
    ch = channel(f"127.0.0.1:{stack.billing_port}", SERVICE_TOKEN)
    try:
        assert _queued_records(f"127.0.0.1:{stack.kafka_port}") >= 1  # the record outlived the stack
        grpc.channel_ready_future(ch).result(timeout=30)
        billing = billing_pb2_grpc.BillingStub(ch)
        with httpx.Client(base_url=stack.url, timeout=30) as api:
            assert api.get(f"/v1/jobs/{job_id}", headers=headers).json()["status"] == "queued"
            stack.start_worker()
            jobs = wait_terminal(api, headers, [job_id], ENDS_WITHIN_S)
        assert jobs[job_id]["status"] == "completed", jobs[job_id]
        assert_ledger_balances(billing, acc, GRANT, jobs)
    finally:
        ch.close()
        stack.stop()


def test_records_outlive_a_sigkill_of_the_broker_and_the_s3_server(tmp_path):
    s3_port, kafka_port = free_port(), free_port()
    bootstrap, topic = f"127.0.0.1:{kafka_port}", "durable.check"
    sent = {f"r{i}".encode() for i in range(20)}

    def start():
        s3 = start_object_store(s3_port, tmp_path / "broker", tmp_path / "s3.log")
        return s3, start_broker(kafka_port, tmp_path / "kafka.log", s3_port)

    procs = start()
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for value in sent:
            producer.send(topic, value, key=value).get(timeout=30)  # acknowledged, one by one
        producer.close()
    finally:
        for proc in procs:
            proc.kill()  # SIGKILL: nothing is flushed at exit
            proc.wait()
        stop_object_store(procs[0])  # only removes the sockets it left

    procs = start()
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=5000, request_timeout_ms=10000)
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
        got = {m.value for m in consumer}
        consumer.close()
        assert got == sent
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        stop_object_store(procs[0])
