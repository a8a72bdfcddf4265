"""The worker outlives the services it depends on, and refuses broken audio at once (issue 11).

Its own stack: a test pipeline of 10 steps of 0.4 s, and a worker that gives the jobs service
2 s to answer and the broker 3 s to acknowledge an event (the defaults are 10 s and 30 s), and
waits 3 s, then 6 s between the tries of a failing job.
Before the consumer loop and ``JobRunner`` (services/inference/worker.py, runner.py), a jobs
service away for longer than its gRPC deadline, or a broker pause longer than 30 s, made the
worker process exit; its queued jobs then waited for another worker or the 24 h sweep.
"""

from __future__ import annotations

import io
import signal
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import Account, running_stack
from tests.support.api import upload_ok, wait_job
from tests.support.audio import tone_wav

WORKER_ENV = {"TEST_PIPELINE_STEP_S": "0.4", "TIMBR_GRPC_TIMEOUT_S": "2", "TIMBR_EVENT_TIMEOUT_S": "3",
              "TIMBR_RECONNECT_MAX_BACKOFF_S": "2", "TIMBR_HEARTBEAT_S": "1", "TIMBR_BACKOFF_BASE_S": "3"}


@pytest.fixture(scope="module")
def faults(tmp_path_factory, pg_schemas):
    import grpc

    from services.common.grpc_util import channel
    from services.common.pb.timbr.v1 import billing_pb2_grpc

    with running_stack(tmp_path_factory.mktemp("faults"), pg_schemas, worker_env=WORKER_ENV) as stack:
        ch = channel(f"127.0.0.1:{stack.billing_port}")
        grpc.channel_ready_future(ch).result(timeout=30)
        with httpx.Client(base_url=stack.url, timeout=60) as api:
            yield stack, api, billing_pb2_grpc.BillingStub(ch)
        ch.close()


def _start_job(api, acc, data: bytes | None = None) -> str:
    f = upload_ok(api, acc.headers, data or tone_wav(1.5))
    r = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]})
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


def _charged_once(acc: Account, granted: int, spent: int) -> None:
    b = acc.settled_balance()
    assert (b.available, b.reserved, b.spent) == (granted - spent, 0, spent)
    kinds = sorted(e.kind for e in acc.ledger())
    assert kinds.count("confirm") == kinds.count("reserve") and "release" not in kinds


def _still_serving(api, acc: Account, worker) -> None:
    """The same worker process takes the next job (a worker that exited leaves it queued)."""
    job = wait_job(api, acc.headers, _start_job(api, acc), timeout_s=45)
    assert job["status"] == "completed", job
    assert worker.poll() is None, f"the worker exited with {worker.returncode}"


def test_worker_waits_for_the_jobs_service_and_runs_the_job(faults):
    stack, api, billing = faults
    acc = Account(billing, 100)
    worker, jobs = stack.procs["worker"], stack.procs["jobs"]
    worker.send_signal(signal.SIGSTOP)            # the request will reach the worker while jobs is away
    try:
        job_id = _start_job(api, acc)
        time.sleep(1.0)                            # the outbox publishes the request (every 0.2 s)
        jobs.send_signal(signal.SIGSTOP)
    finally:
        worker.send_signal(signal.SIGCONT)
    try:
        time.sleep(13.0)                           # longer than the default gRPC deadline (10 s)
    finally:
        jobs.send_signal(signal.SIGCONT)
    job = wait_job(api, acc.headers, job_id, timeout_s=60)
    assert job["status"] == "completed", job
    _still_serving(api, acc, worker)
    _charged_once(acc, 100, 4)


def test_worker_rebuilds_its_producer_after_a_broker_outage(faults):
    """The broker pauses while a job that fails every try is retried: its dead-letter send (then
    its events) fail. The worker waits, rebuilds its producer, and the job still ends failed with
    its credits released. Before, the dead-letter send raised out of the worker after 30 s."""
    stack, api, billing = faults
    acc = Account(billing, 100)
    worker, broker = stack.procs["worker"], stack.procs["kafka"]
    f = upload_ok(api, acc.headers, tone_wav(1.5))
    job_id = api.post("/v1/audio/enhance", headers=acc.headers,               # fails transiently, always
                      json={"file_id": f["file_id"], "eq_preset": "bass_boost"}).json()["job_id"]
    job = wait_job(api, acc.headers, job_id, until={"running", "completed", "failed"})
    assert job["status"] == "running", job
    broker.send_signal(signal.SIGSTOP)             # tries at 0, 3 and 9 s, then the dead-letter send
    try:
        time.sleep(42.0)                           # past that send's 30 s timeout of before
    finally:
        broker.send_signal(signal.SIGCONT)
    job = wait_job(api, acc.headers, job_id, timeout_s=90)
    assert job["status"] == "failed" and job["error"]["code"] == "processing_failed", job
    _still_serving(api, acc, worker)
    b = acc.settled_balance()
    assert (b.available, b.reserved, b.spent) == (98, 0, 2)      # this job released, the next one charged


def _nan_wav() -> bytes:
    x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    x[4000:4100] = np.nan
    x[9000] = np.inf
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), 16000, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def test_nan_audio_fails_at_once_as_invalid_audio(faults):
    _, api, billing = faults
    acc = Account(billing, 100)
    job_id = _start_job(api, acc, _nan_wav())
    job = wait_job(api, acc.headers, job_id, timeout_s=30)
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_audio", job
    assert "NaN" in job["error"]["message"]
    assert job["attempts"] <= 1
    b = acc.settled_balance()
    assert (b.available, b.reserved, b.spent) == (100, 0, 0)
    assert sorted(e.kind for e in acc.ledger()) == ["grant", "release", "reserve"]
