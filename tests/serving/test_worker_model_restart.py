"""The worker survives the model server restarting mid-job, and fails cleanly when it stays down.

A real stack (Kafka protocol broker, billing, jobs, gateway, worker) whose worker reaches its
models remotely (``TIMBR_MODEL_BACKEND=remote``) through a model server subprocess: the KServe
ModelServer, then a real Triton Inference Server (the module is parametrised). The job's pipeline (``tests.serving.pipelines.ModelStepsPipeline``) makes ten model calls.

1. The server is killed (SIGKILL) a third of the way in and started again: the client retries
   UNAVAILABLE until it is back, the same attempt completes, the job is charged once.
2. The server is killed and stays down: the client gives up after its retries, the runtime
   retries the job, then fails it; the reserved credits are released.
"""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest

from tests.conftest import Account, running_stack
from tests.serving.support import BACKENDS, speech, start_server
from tests.support.api import upload_ok, wait_job

PIPELINE = "enhance=tests.serving.pipelines:ModelStepsPipeline"


@pytest.fixture(scope="module", params=BACKENDS)
def setup(request, tmp_path_factory, pg_schemas):
    import grpc

    from services.common.grpc_util import channel
    from services.common.pb.timbr.v1 import billing_pb2_grpc

    root = tmp_path_factory.mktemp(f"restart-{request.param}")
    server = start_server(request.param, ["vad_silero"], root).wait_ready()
    worker_env = {"TIMBR_WORKER_EXTRA_PIPELINES": PIPELINE,
                  "TEST_PIPELINE_STEP_S": "0.3", "TIMBR_HEARTBEAT_S": "0.5",
                  "TIMBR_MODEL_BACKEND": "remote", "TIMBR_MODEL_URL": server.url,
                  "TIMBR_MODEL_STARTUP_MODELS": "vad_silero",
                  "TIMBR_MODEL_RETRIES": "90", "TIMBR_MODEL_RETRY_BACKOFF_S": "0.2",
                  "TIMBR_MODEL_RETRY_MAX_BACKOFF_S": "1.0"}
    try:
        with (running_stack(root, pg_schemas, worker_env) as stack,
              channel(f"127.0.0.1:{stack.billing_port}") as ch,
              httpx.Client(base_url=stack.url, timeout=60) as api):
            grpc.channel_ready_future(ch).result(timeout=30)
            yield stack, server, api, billing_pb2_grpc.BillingStub(ch)
    finally:
        server.stop()


def _wav() -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, speech(16000)[: 16000 * 2], 16000, format="WAV")
    return buf.getvalue()


def _start_job(api, acc) -> str:
    f = upload_ok(api, acc.headers, _wav())
    r = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]})
    assert r.status_code in (200, 201, 202), r.text
    return r.json()["job_id"]


def _wait_progress(api, acc, job_id, at_least: float) -> dict:
    job = wait_job(api, acc.headers, job_id, until={"running", "completed", "failed"})
    deadline = time.monotonic() + 60
    while job["progress"] < at_least and job["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
        job = api.get(f"/v1/jobs/{job_id}", headers=acc.headers).json()
    return job


def test_job_survives_model_server_restart_mid_job(setup):
    _stack, server, api, billing = setup
    acc = Account(billing, 100)
    job_id = _start_job(api, acc)
    job = _wait_progress(api, acc, job_id, 0.3)
    assert job["status"] == "running", job
    server.stop(kill=True)  # SIGKILL (Triton: with its python-backend stubs)
    time.sleep(1.0)  # requests meanwhile get UNAVAILABLE and are retried
    server.start()
    job = wait_job(api, acc.headers, job_id, timeout_s=120)
    assert job["status"] == "completed", job
    assert job["attempts"] == 1  # the same attempt carried on: the client's retries bridged the gap
    report = api.get(next(r["url"] for r in job["results"] if r["name"] == "report.json")).json()
    assert report["model_calls"] == 10 and len(set(report["speech_frames"])) == 1
    assert report["speech_frames"][0] > 0
    assert sorted(e.kind for e in acc.ledger()) == ["confirm", "grant", "reserve"]
    b = acc.balance()
    assert (b.available, b.reserved, b.spent) == (98, 0, 2)


def test_job_fails_cleanly_and_releases_credits_when_server_stays_down(setup):
    stack, server, api, billing = setup
    server.wait_ready()
    # A worker that gives up sooner, so the test stays short: 2 client retries, 2 attempts.
    stack.procs["worker"].send_signal(signal.SIGTERM)
    stack.procs["worker"].wait(timeout=30)
    stack.start_worker("worker-impatient", TIMBR_MODEL_RETRIES="2", TIMBR_MAX_ATTEMPTS="2",
                       TIMBR_BACKOFF_BASE_S="0.2", TIMBR_MODEL_READY_TIMEOUT_S="0")
    acc = Account(billing, 100)
    server.stop(kill=True)
    job_id = _start_job(api, acc)
    job = wait_job(api, acc.headers, job_id, timeout_s=120)
    assert job["status"] == "failed", job
    assert "unavailable" in json.dumps(job).lower(), job
    kinds = sorted(e.kind for e in acc.ledger())
    assert kinds == ["grant", "release", "reserve"], kinds
    b = acc.balance()
    assert (b.available, b.reserved, b.spent) == (100, 0, 0)
