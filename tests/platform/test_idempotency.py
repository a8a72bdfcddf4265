"""Idempotency-Key: the jobs service on SQLite and PostgreSQL (concurrent requests in threads),
and the REST API against the running stack (concurrent HTTP requests, PostgreSQL behind)."""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from services.jobs.errors import IdempotencyConflict, InsufficientCredits, InvalidRequest
from services.jobs.models import FileRecord, IdempotencyKey, JobRecord, OutboxMessage
from tests.platform.test_jobs_service import env  # noqa: F401 - the fixture
from tests.support.api import upload_ok
from tests.support.audio import tone_wav


def _reserves(billing, acc) -> list:
    return [e for e in billing.ledger(acc) if e.kind == "reserve"]


def test_concurrent_creates_with_one_key_make_one_job_and_one_reservation(env):  # noqa: F811
    jobs, billing, acc, sessions = env
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: jobs.create_job(acc, "enhance", {"x": 1}, {"file": "f1"},
                                                       idempotency_key="k-1"), range(8)))
    assert len({j.job_id for j in made}) == 1
    assert sorted(j.replayed for j in made) == [False] + [True] * 7
    assert len(_reserves(billing, acc)) == 1 and billing.balance(acc).reserved == 10
    with sessions() as s:
        assert s.query(JobRecord).count() == 1 and s.query(OutboxMessage).count() == 1


def test_same_key_other_request_is_a_conflict_and_keys_are_per_account(env):  # noqa: F811
    jobs, billing, acc, _ = env
    first = jobs.create_job(acc, "enhance", {"x": 1}, {"file": "f1"}, idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        jobs.create_job(acc, "enhance", {"x": 2}, {"file": "f1"}, idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        jobs.create_job(acc, "separate", {"x": 1}, {"file": "f1"}, idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        jobs.create_job(acc, "enhance", {"x": 1}, {"file": "f1"}, idempotency_key="k", webhook_url="http://a/")
    assert jobs.create_job(acc, "enhance", {"x": 1}, {"file": "f1"}, idempotency_key="k").job_id == first.job_id
    other = billing.create_account("b").account_id
    billing.grant(other, 100)
    jobs.register_file(FileRecord(file_id="f2", account_id=other, storage_key="bronze/z", duration_s=1.0))
    assert jobs.create_job(other, "enhance", {"x": 1}, {"file": "f2"}, idempotency_key="k").job_id != first.job_id
    assert len(_reserves(billing, acc)) == 1
    with pytest.raises(InvalidRequest):
        jobs.create_job(acc, "enhance", {}, {"file": "f1"}, idempotency_key="x" * 256)


def test_a_failed_request_frees_its_key_and_old_keys_expire(env):  # noqa: F811
    jobs, billing, acc, sessions = env
    billing.reserve("hog", acc, 95)
    with pytest.raises(InsufficientCredits):
        jobs.create_job(acc, "enhance", {}, {"file": "f1"}, idempotency_key="retry-me")
    billing.release("hog")
    job = jobs.create_job(acc, "enhance", {}, {"file": "f1"}, idempotency_key="retry-me")
    assert job.status == "queued" and not job.replayed
    with sessions.begin() as s:  # 25 h later the key is forgotten: a new job
        s.get(IdempotencyKey, (acc, "retry-me")).created_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=25)
    again = jobs.create_job(acc, "enhance", {}, {"file": "f1"}, idempotency_key="retry-me")
    assert again.job_id != job.job_id and not again.replayed
    with sessions.begin() as s:
        s.get(IdempotencyKey, (acc, "retry-me")).created_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=25)
    assert jobs.keys.purge() == 1


def test_a_claim_left_by_a_dead_request_is_taken_over_without_a_second_reservation(env):  # noqa: F811
    jobs, billing, acc, sessions = env
    from services.jobs.idempotency import fingerprint

    # A request claimed the key and reserved, then its process died before inserting the job.
    fp = fingerprint("enhance", {}, {"file": "f1"}, "")
    with sessions.begin() as s:
        s.add(IdempotencyKey(account_id=acc, key="dead", endpoint="enhance", fingerprint=fp, resource_id="job_dead",
                             created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)))
    billing.reserve("job_dead", acc, 10)
    job = jobs.create_job(acc, "enhance", {}, {"file": "f1"}, idempotency_key="dead")
    assert job.job_id == "job_dead" and len(_reserves(billing, acc)) == 1


def test_concurrent_file_registrations_with_one_key_keep_the_first(env):  # noqa: F811
    jobs, _, acc, sessions = env

    def register(i):
        return jobs.register_file(FileRecord(file_id=f"fx{i}", account_id=acc, storage_key=f"bronze/{i}"),
                                  "up-1", "sha-a")

    with ThreadPoolExecutor(6) as pool:
        made = list(pool.map(register, range(6)))
    assert len({f.file_id for f in made}) == 1 and sum(not f.replayed for f in made) == 1
    with pytest.raises(IdempotencyConflict):
        jobs.register_file(FileRecord(file_id="fy", account_id=acc, storage_key="bronze/y2"), "up-1", "sha-b")
    with sessions() as s:
        assert s.query(FileRecord).filter(FileRecord.file_id.like("fx%")).count() == 1


# Through the REST API, concurrent HTTP requests -----------------------------------------------------


def test_concurrent_posts_with_one_key_return_one_job(stack, make_account):
    acc = make_account(50)
    with httpx.Client(base_url=stack.url, timeout=60) as api:
        f = upload_ok(api, acc.headers, tone_wav(2.2))
        key = {"Idempotency-Key": str(uuid.uuid4())}
        body = {"file_id": f["file_id"], "separation_type": "dialogue-me"}

        def post(_):
            return api.post("/v1/audio/separate", headers={**acc.headers, **key}, json=body)

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(post, range(6)))
        assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
        assert len({r.json()["job_id"] for r in answers}) == 1
        assert sorted(r.headers.get("Idempotent-Replayed") for r in answers if r.headers.get("Idempotent-Replayed")) \
            == ["true"] * 5
        assert all(r.json() == answers[0].json() for r in answers)  # the first response, every time
        assert [e.kind for e in acc.ledger()].count("reserve") == 1 and acc.balance().reserved == 3

        # Defaults spelled out are the same request; another value is a conflict.
        same = api.post("/v1/audio/separate", headers={**acc.headers, **key},
                        json={**body, "sample_rate": 48000})
        assert same.status_code == 200 and same.headers["Idempotent-Replayed"] == "true"
        other = api.post("/v1/audio/separate", headers={**acc.headers, **key}, json={**body, "sample_rate": 44100})
        assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
        # The same key on another endpoint is another request too.
        r = api.post("/v1/audio/enhance", headers={**acc.headers, **key}, json={"file_id": f["file_id"]})
        assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_conflict"
        assert api.post(f"/v1/jobs/{answers[0].json()['job_id']}/cancel", headers=acc.headers).status_code == 200
        assert api.post("/v1/audio/separate", headers={**acc.headers, "Idempotency-Key": ""},
                        json=body).status_code == 422


def test_upload_with_a_key_is_stored_once(stack, make_account):
    acc = make_account(5)
    with httpx.Client(base_url=stack.url, timeout=60) as api:
        data = tone_wav(1.0)
        key = {"Idempotency-Key": str(uuid.uuid4())}

        def post(_):
            return api.post("/v1/upload", headers={**acc.headers, **key},
                            files={"file": ("a.wav", data, "audio/wav")})

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(post, range(4)))
        assert [r.status_code for r in answers] == [200] * 4
        assert len({r.json()["file_id"] for r in answers}) == 1
        assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 3
        bronze = stack.root / "storage" / "bronze" / acc.account_id
        stored = [p for p in bronze.rglob("*") if p.is_file()]
        assert [p.parent.name for p in stored] == [answers[0].json()["file_id"]]  # the replays' copies are gone
        other = api.post("/v1/upload", headers={**acc.headers, **key},
                         files={"file": ("a.wav", tone_wav(1.0, freq=880), "audio/wav")})
        assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
        assert len([p for p in bronze.rglob("*") if p.is_file()]) == 1
