"""A worker killed mid-job: the job still ends, and the credits are right.

Its own stack: a slow test pipeline (10 steps of 0.4 s), frequent heartbeats, and a sweeper
that gives up on a silent running job after 30 s (longer than a consumer-group rebalance, and
than a replacement worker takes to start on a loaded 2-core machine).
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from tests.conftest import Account, running_stack
from tests.support.api import upload_ok, wait_job
from tests.support.audio import tone_wav


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory, pg_schemas):
    with running_stack(tmp_path_factory.mktemp("crash"), pg_schemas,
                    worker_env={"TEST_PIPELINE_STEP_S": "0.4", "TIMBR_HEARTBEAT_S": "0.5"},
                    extra_env={"TIMBR_STALE_RUNNING_S": "30", "TIMBR_SWEEP_INTERVAL_S": "0.5"}) as s:
        yield s


@pytest.fixture(scope="module")
def crash_setup(slow_stack):
    import grpc

    from services.common.grpc_util import channel
    from services.common.pb.timbr.v1 import billing_pb2_grpc

    ch = channel(f"127.0.0.1:{slow_stack.billing_port}")
    grpc.channel_ready_future(ch).result(timeout=30)
    with httpx.Client(base_url=slow_stack.url, timeout=60) as api:
        yield slow_stack, api, billing_pb2_grpc.BillingStub(ch)
    ch.close()


def _start_job(api, acc) -> str:
    f = upload_ok(api, acc.headers, tone_wav(1.5))
    return api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]


def _kill_when_running(api, acc, job_id, proc) -> None:
    job = wait_job(api, acc.headers, job_id, until={"running", "completed", "failed"})
    deadline = time.monotonic() + 30
    while job["progress"] < 0.3 and time.monotonic() < deadline:
        time.sleep(0.1)
        job = api.get(f"/v1/jobs/{job_id}", headers=acc.headers).json()
    assert job["status"] == "running", job
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def test_killed_worker_job_is_rerun_by_another_and_charged_once(crash_setup):
    stack, api, billing = crash_setup
    acc = Account(billing, 100)
    job_id = _start_job(api, acc)
    _kill_when_running(api, acc, job_id, stack.procs["worker"])

    replacement = stack.start_worker("worker2")
    job = wait_job(api, acc.headers, job_id, timeout_s=90)
    assert job["status"] == "completed", job
    assert job["attempts"] == 2
    report = api.get(next(r["url"] for r in job["results"] if r["name"] == "report.json")).json()
    assert report["worker_pid"] == replacement.pid
    b = acc.settled_balance()
    assert (b.available, b.reserved, b.spent) == (98, 0, 2)
    assert sorted(e.kind for e in acc.ledger()) == ["confirm", "grant", "reserve"]


def test_job_of_a_dead_worker_that_nobody_takes_fails_and_releases(crash_setup):
    stack, api, billing = crash_setup
    acc = Account(billing, 100)
    job_id = _start_job(api, acc)
    _kill_when_running(api, acc, job_id, stack.procs["worker2"])

    job = wait_job(api, acc.headers, job_id, timeout_s=90)
    assert job["status"] == "failed" and job["error"]["code"] == "timeout"
    b = acc.settled_balance()
    assert (b.available, b.reserved, b.spent) == (100, 0, 0)
    assert sorted(e.kind for e in acc.ledger()) == ["grant", "release", "reserve"]
