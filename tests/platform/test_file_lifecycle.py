"""File lifecycle: DELETE of uploads and results, retention with per-account override, 410s,
and nothing an active job reads is removed. Service rules on SQLite and PostgreSQL with real
local storage; the endpoints against the running stack."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from services.common.pb.timbr.v1 import events_pb2
from services.common.storage import LocalStorage
from services.jobs.errors import FileInUse, Gone, InvalidState
from services.jobs.models import FileRecord, JobRecord
from tests.conftest import PG_DSN
from tests.platform.test_jobs_service import env, event  # noqa: F401 - the fixture
from tests.support.api import upload_ok, wait_job
from tests.support.audio import tone_wav

DAY = dt.timedelta(days=1)


@pytest.fixture
def lifecycle_env(env, tmp_path):  # noqa: F811
    jobs, billing, acc, sessions = env
    storage = LocalStorage(tmp_path / "objects", "secret", "http://x")
    jobs.lifecycle._storage = storage
    return jobs, billing, acc, sessions, storage


def _file(jobs, storage, acc, file_id, age_days=0.0):
    key = f"bronze/{acc}/{file_id}/a.wav"
    storage.put_file(key, _tmpfile(storage))
    created = dt.datetime.now(dt.UTC) - age_days * DAY
    jobs.register_file(FileRecord(file_id=file_id, account_id=acc, storage_key=key, duration_s=2.0,
                                  created_at=created))
    return key


def _tmpfile(storage):
    path = storage.root / "src.bin"
    path.write_bytes(b"RIFF....")
    return path


def _complete(jobs, job, storage, age_days=0.0):
    key = f"silver/{job.account_id}/{job.job_id}/out.wav"
    storage.put_file(key, _tmpfile(storage))
    jobs.apply_event(event(job, events_pb2.EVENT_TYPE_COMPLETED,
                           results=[events_pb2.ResultObject(name="out.wav", storage_key=key, size_bytes=8)]))
    return key


def test_delete_file_and_results_keep_the_records(lifecycle_env):
    jobs, billing, acc, _, storage = lifecycle_env
    key = _file(jobs, storage, acc, "fa")
    job = jobs.create_job(acc, "enhance", {}, {"file": "fa"})
    with pytest.raises(FileInUse):  # a queued job reads it
        jobs.delete_file("fa", acc)
    with pytest.raises(InvalidState):  # results of a job that has not ended
        jobs.delete_job_results(job.job_id, acc)
    result_key = _complete(jobs, job, storage)
    assert jobs.get_job(job.job_id, acc).results_expire_at > dt.datetime.now(dt.UTC) + 6.9 * DAY

    assert jobs.delete_file("fa", acc).removed == "deleted"
    assert not storage.exists(key) and jobs.delete_file("fa", acc).removed == "deleted"  # idempotent
    with pytest.raises(Gone) as gone:
        jobs.create_job(acc, "enhance", {}, {"file": "fa"})
    assert gone.value.code == "deleted"
    done = jobs.delete_job_results(job.job_id, acc)
    assert done.results_removed == "deleted" and done.results_expire_at is None and not storage.exists(result_key)
    assert jobs.get_job(job.job_id, acc).credits_reserved == 2  # the record stays, as billed
    assert billing.balance(acc).spent == 2


def test_retention_sweeper_with_an_account_override(lifecycle_env):
    jobs, _, acc, sessions, storage = lifecycle_env
    old = _file(jobs, storage, acc, "old", age_days=8)
    young = _file(jobs, storage, acc, "young", age_days=2)
    busy = _file(jobs, storage, acc, "busy", age_days=9)
    running = jobs.create_job(acc, "enhance", {}, {"file": "busy"})
    finished = jobs.create_job(acc, "enhance", {}, {"file": "young"})
    result_key = _complete(jobs, finished, storage)
    with sessions.begin() as s:
        s.get(JobRecord, finished.job_id).finished_at = dt.datetime.now(dt.UTC) - 8 * DAY

    assert jobs.lifecycle.sweep() == 2  # "old" and the results; "busy" is read by a queued job
    assert not storage.exists(old) and storage.exists(young) and storage.exists(busy)
    assert not storage.exists(result_key)
    assert jobs.get_file("old", acc).removed == "expired"
    assert jobs.get_job(finished.job_id, acc).results_removed == "expired"
    with pytest.raises(Gone) as gone:
        jobs.create_job(acc, "enhance", {}, {"file": "old"})
    assert gone.value.code == "expired"

    jobs.cancel_job(running.job_id, acc)
    jobs.accounts.set_retention(acc, 1)  # this account keeps things one day
    assert jobs.lifecycle.sweep() == 2 and not storage.exists(busy) and not storage.exists(young)
    assert jobs.lifecycle.sweep() == 0


# Through the REST API ---------------------------------------------------------------------------


def _age(stack, table: str, column: str, key: str, value: str, days: float) -> None:
    schema = stack.jobs_db.split("search_path%3D", 1)[1]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.{table} SET {column} = {column} - interval '{days} days' "
                     f"WHERE {key} = %s", (value,))


def test_delete_endpoints_and_410s(api, make_account, stack):
    acc = make_account(20)
    f = upload_ok(api, acc.headers, tone_wav(1.0))
    assert f["expires_at"] and f["removed"] is None
    queued = api.post("/v1/audio/separate", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    r = api.delete(f"/v1/files/{f['file_id']}", headers=acc.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "file_in_use" and r.json()["error"]["job_id"] == queued
    r = api.delete(f"/v1/jobs/{queued}", headers=acc.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"
    api.post(f"/v1/jobs/{queued}/cancel", headers=acc.headers)

    job_id = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    job = wait_job(api, acc.headers, job_id)
    assert job["results_expire_at"] and job["results_removed"] is None
    url = job["results"][0]["url"]
    assert api.get(url).status_code == 200

    assert api.delete(f"/v1/jobs/{job_id}", headers=acc.headers).status_code == 204
    assert api.delete(f"/v1/jobs/{job_id}", headers=acc.headers).status_code == 204  # idempotent
    after = api.get(f"/v1/jobs/{job_id}", headers=acc.headers).json()
    assert after["status"] == "completed" and after["results"] == [] and after["results_removed"] == "deleted"
    assert after["credits_charged"] == 1
    r = api.get(url)
    assert r.status_code == 410 and r.json()["error"]["code"] == "deleted"

    assert api.delete(f"/v1/files/{f['file_id']}", headers=acc.headers).status_code == 204
    assert api.get(f"/v1/files/{f['file_id']}", headers=acc.headers).json()["removed"] == "deleted"
    r = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]})
    assert r.status_code == 410 and r.json()["error"]["code"] == "deleted"
    other = make_account(1)
    assert api.delete(f"/v1/files/{f['file_id']}", headers=other.headers).status_code == 404
    assert api.delete(f"/v1/jobs/{job_id}", headers=other.headers).status_code == 404
    assert api.delete("/v1/files/file_nope", headers=acc.headers).json()["error"]["code"] == "file_not_found"


def test_retention_expires_uploads_and_results_on_the_stack(api, make_account, stack):
    """The stack's sweeper runs every second here (TIMBR_RETENTION_SWEEP_INTERVAL_S)."""
    import time

    acc = make_account(20)
    f = upload_ok(api, acc.headers, tone_wav(1.0))
    job = wait_job(api, acc.headers, api.post("/v1/audio/enhance", headers=acc.headers,
                                              json={"file_id": f["file_id"]}).json()["job_id"])
    url = job["results"][0]["url"]
    _age(stack, "files", "created_at", "file_id", f["file_id"], 8)
    _age(stack, "jobs", "finished_at", "job_id", job["job_id"], 8)
    deadline = time.monotonic() + 30
    while api.get(f"/v1/files/{f['file_id']}", headers=acc.headers).json()["removed"] != "expired":
        assert time.monotonic() < deadline, "the retention sweeper did not run"
        time.sleep(0.5)
    while api.get(f"/v1/jobs/{job['job_id']}", headers=acc.headers).json()["results_removed"] != "expired":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    r = api.get(url)
    assert r.status_code == 410 and r.json()["error"]["code"] == "expired"
    r = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]})
    assert r.status_code == 410 and r.json()["error"]["code"] == "expired"
