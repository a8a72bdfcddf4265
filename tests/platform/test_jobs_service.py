"""Job state machine and event idempotency on SQLite and PostgreSQL, with a real billing gRPC server."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from services.billing.server import BillingServicer
from services.billing.service import BillingService
from services.common.grpc_util import channel, make_server
from services.common.migrate import migrated_sessionmaker
from services.common.pb.timbr.v1 import billing_pb2_grpc, events_pb2
from services.jobs.billing_client import BillingClient
from services.jobs.errors import FileNotFound, InsufficientCredits, InvalidRequest, InvalidState, JobNotFound
from services.jobs.models import FileRecord, JobRecord, OutboxMessage
from services.jobs.service import JobsService, credits_for
from tools.devbroker import free_port


@pytest.fixture
def env(db_url, tmp_path):
    billing = BillingService(migrated_sessionmaker("billing", f"sqlite:///{tmp_path / 'billing.db'}"))
    server, port = make_server("billing", "127.0.0.1:0",
                               lambda s: billing_pb2_grpc.add_BillingServicer_to_server(BillingServicer(billing), s))
    ch = channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(ch).result(timeout=10)
    sessions = migrated_sessionmaker("jobs", db_url)
    jobs = JobsService(sessions, BillingClient(ch))
    acc = billing.create_account("a").account_id
    billing.grant(acc, 100)
    jobs.register_file(FileRecord(file_id="f1", account_id=acc, storage_key="bronze/x", duration_s=9.2))
    jobs.register_file(FileRecord(file_id="s1", account_id=acc, storage_key="bronze/y", kind="subtitle"))
    yield jobs, billing, acc, sessions
    ch.close()
    server.stop(0)


def event(job, type_, **kw):
    return events_pb2.JobEvent(event_id="e", job_id=job.job_id, account_id=job.account_id, job_type=job.job_type,
                               type=type_, **kw)


def test_credits_round_up():
    assert [credits_for(d) for d in (0.01, 1.0, 1.000001, 59.5, 3600)] == [1, 1, 2, 60, 3600]


def test_create_reserves_and_writes_the_outbox_in_one_go(env):
    jobs, billing, acc, sessions = env
    job = jobs.create_job(acc, "enhance", {"x": 1}, {"file": "f1"})
    assert job.status == "queued" and job.credits_reserved == 10
    assert billing.balance(acc).reserved == 10
    with sessions() as s:
        rows = s.query(OutboxMessage).all()
        assert [r.key for r in rows] == [job.job_id]
        req = events_pb2.JobRequested.FromString(rows[0].payload)
        assert req.inputs["file"].storage_key == "bronze/x" and req.duration_s == pytest.approx(9.2)


def test_create_refusals_reserve_nothing(env):
    jobs, billing, acc, _ = env
    with pytest.raises(FileNotFound):
        jobs.create_job(acc, "enhance", {}, {"file": "nope"})
    with pytest.raises(FileNotFound):
        jobs.create_job("acc_other", "enhance", {}, {"file": "f1"})
    with pytest.raises(InvalidRequest):
        jobs.create_job(acc, "diarize", {}, {"file": "f1", "input_srt": "f1"})
    with pytest.raises(InvalidRequest):
        jobs.create_job(acc, "enhance", {}, {"file": "s1"})
    with pytest.raises(InvalidRequest):
        jobs.create_job(acc, "transmogrify", {}, {"file": "f1"})
    billing.reserve("hog", acc, 95)
    with pytest.raises(InsufficientCredits) as err:
        jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    assert (err.value.required, err.value.available) == (10, 5)
    assert billing.balance(acc).reserved == 95


def test_event_sequence_and_duplicates(env):
    jobs, billing, acc, _ = env
    job = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    assert jobs.apply_event(event(job, events_pb2.EVENT_TYPE_RUNNING, attempt=1)) == "running"
    jobs.apply_event(event(job, events_pb2.EVENT_TYPE_PROGRESS, progress=0.6, stage="denoise"))
    jobs.apply_event(event(job, events_pb2.EVENT_TYPE_PROGRESS, progress=0.4, stage="denoise"))  # late, lower
    assert jobs.get_job(job.job_id, acc).progress == pytest.approx(0.6)
    done = event(job, events_pb2.EVENT_TYPE_COMPLETED,
                 results=[events_pb2.ResultObject(name="a.wav", storage_key="silver/a.wav", size_bytes=3)])
    assert jobs.apply_event(done) == "completed"
    for dup in (done, event(job, events_pb2.EVENT_TYPE_FAILED, error_code="x"),
                event(job, events_pb2.EVENT_TYPE_RUNNING)):
        assert jobs.apply_event(dup) == "duplicate"
    final = jobs.get_job(job.job_id, acc)
    assert final.status == "completed" and final.progress == 1.0 and final.results[0]["name"] == "a.wav"
    assert sorted(e.kind for e in billing.ledger(acc)) == ["confirm", "grant", "reserve"]


def test_failure_releases_and_cancel_rules(env):
    jobs, billing, acc, _ = env
    a = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    jobs.apply_event(event(a, events_pb2.EVENT_TYPE_FAILED, error_code="invalid_audio", error_message="bad"))
    got = jobs.get_job(a.job_id, None)
    assert (got.status, got.error_code, got.error_message) == ("failed", "invalid_audio", "bad")
    b = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    assert jobs.cancel_job(b.job_id, acc).status == "cancelled"
    with pytest.raises(InvalidState):
        jobs.cancel_job(b.job_id, acc)
    with pytest.raises(JobNotFound):
        jobs.cancel_job(b.job_id, "acc_other")
    assert jobs.apply_event(event(b, events_pb2.EVENT_TYPE_COMPLETED)) == "duplicate"
    assert jobs.get_job(b.job_id, acc).status == "cancelled"
    bal = billing.balance(acc)
    assert (bal.available, bal.reserved, bal.spent) == (100, 0, 0)


def test_sweeper_fails_silent_jobs_and_releases(env):
    jobs, billing, acc, sessions = env
    stale = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    fresh = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    jobs.apply_event(event(stale, events_pb2.EVENT_TYPE_RUNNING))
    jobs.apply_event(event(fresh, events_pb2.EVENT_TYPE_RUNNING))
    with sessions.begin() as s:
        s.get(JobRecord, stale.job_id).updated_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=700)
    assert jobs.sweep(stale_running_s=600, stale_queued_s=86400) == 1
    assert jobs.get_job(stale.job_id, acc).error_code == "timeout"
    assert jobs.get_job(fresh.job_id, acc).status == "running"
    assert billing.balance(acc).reserved == 10 and billing.balance(acc).available == 90


def test_orphan_reservations_are_released(env):
    jobs, billing, acc, _ = env
    job = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    billing.reserve("job_lost_before_insert", acc, 7)  # as if the service died after Reserve
    assert jobs.release_orphans(older_than_s=0) == 1
    assert jobs.release_orphans(older_than_s=0) == 0
    assert billing.balance(acc).reserved == job.credits_reserved  # the real job keeps its reservation
    assert sorted(e.kind for e in billing.ledger(acc) if e.job_id == "job_lost_before_insert") == ["release",
                                                                                                   "reserve"]


def test_grpc_servers_answer_the_standard_health_check():
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server, port = make_server("probe", "127.0.0.1:0", lambda s: None)
    try:
        with channel(f"127.0.0.1:{port}") as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(0)


# Credits are never stranded (issue 11): Billing away when a job ends -------------------------------


@pytest.fixture
def billing_away(env, tmp_path):
    """The env's jobs service with a 1 s gRPC deadline, a Billing that can be stopped and started
    again on the same port, and the two as callables."""
    _, billing, acc, sessions = env
    port = free_port()
    state = {}

    def up():
        state["server"], _ = make_server("billing", f"127.0.0.1:{port}", lambda s: (
            billing_pb2_grpc.add_BillingServicer_to_server(BillingServicer(billing), s)))

    def down():
        state.pop("server").stop(0).wait()

    up()
    ch = channel(f"127.0.0.1:{port}")
    quick = JobsService(sessions, BillingClient(ch, timeout_s=1.0))
    yield quick, billing, acc, up, down
    if "server" in state:
        down()
    ch.close()


def _settle_until(jobs, expected: int, timeout_s: float = 60.0) -> None:
    """Run settler passes (as the loop does) until ``expected`` settled; the channel may still be
    in its reconnect backoff (up to 5 s) right after Billing comes back."""
    import time

    settled, deadline = 0, time.monotonic() + timeout_s
    while settled < expected and time.monotonic() < deadline:
        settled += jobs.settle_pending()
        time.sleep(0.2)
    assert settled == expected


def _kinds(billing, acc, job_id):
    return sorted(e.kind for e in billing.ledger(acc) if e.job_id == job_id)


def test_cancel_while_billing_is_away_releases_once_it_is_back(billing_away):
    jobs, billing, acc, up, down = billing_away
    job = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    down()
    assert jobs.cancel_job(job.job_id, acc).status == "cancelled"  # the client's answer: it is cancelled
    assert jobs.settle_pending() == 0  # still away: nothing settled, nothing lost
    with pytest.raises(InvalidState):
        jobs.cancel_job(job.job_id, acc)
    up()
    _settle_until(jobs, 1)
    assert jobs.settle_pending() == 0
    assert _kinds(billing, acc, job.job_id) == ["release", "reserve"]
    b = billing.balance(acc)
    assert (b.available, b.reserved, b.spent) == (100, 0, 0)


def test_events_and_sweeps_while_billing_is_away_settle_once_it_is_back(billing_away):
    jobs, billing, acc, up, down = billing_away
    done, failed, stale = (jobs.create_job(acc, "enhance", {}, {"file": "f1"}) for _ in range(3))
    jobs.apply_event(event(stale, events_pb2.EVENT_TYPE_RUNNING))
    down()
    assert jobs.apply_event(event(done, events_pb2.EVENT_TYPE_COMPLETED)) == "completed"
    assert jobs.apply_event(event(failed, events_pb2.EVENT_TYPE_FAILED, error_code="invalid_audio")) == "failed"
    assert jobs.sweep(stale_running_s=0, stale_queued_s=86400) == 1
    assert jobs.get_job(stale.job_id, acc).error_code == "timeout"
    assert billing.balance(acc).reserved == 30
    up()
    _settle_until(jobs, 3)
    assert _kinds(billing, acc, done.job_id) == ["confirm", "reserve"]
    assert _kinds(billing, acc, failed.job_id) == ["release", "reserve"]
    assert _kinds(billing, acc, stale.job_id) == ["release", "reserve"]
    b = billing.balance(acc)
    assert (b.available, b.reserved, b.spent) == (90, 0, 10)
    assert jobs.apply_event(event(done, events_pb2.EVENT_TYPE_COMPLETED)) == "duplicate"
    assert jobs.settle_pending() == 0


def test_concurrent_cancels_end_the_job_once(env):
    """Five cancels at once: one succeeds, the others are refused (409 at the API) on SQLite
    as on PostgreSQL, and the credits are released once."""
    import threading

    jobs, billing, acc, _ = env
    for _ in range(3):
        job = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
        results, barrier = [], threading.Barrier(5)

        def cancel(job_id=job.job_id, barrier=barrier, results=results):
            barrier.wait()
            try:
                results.append(jobs.cancel_job(job_id, acc).status)
            except InvalidState:
                results.append("refused")

        threads = [threading.Thread(target=cancel) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["cancelled"] + ["refused"] * 4
        assert _kinds(billing, acc, job.job_id) == ["release", "reserve"]
    assert billing.balance(acc).reserved == 0


def test_a_cancel_racing_a_completion_ends_the_job_once(env):
    import threading

    jobs, billing, acc, _ = env
    job = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    barrier, outcomes = threading.Barrier(2), []

    def cancel():
        barrier.wait()
        try:
            outcomes.append(jobs.cancel_job(job.job_id, acc).status)
        except InvalidState:
            outcomes.append("refused")

    def complete():
        barrier.wait()
        outcomes.append(jobs.apply_event(event(job, events_pb2.EVENT_TYPE_COMPLETED)))

    threads = [threading.Thread(target=cancel), threading.Thread(target=complete)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) in (["cancelled", "duplicate"], ["completed", "refused"])
    status = jobs.get_job(job.job_id, acc).status
    assert _kinds(billing, acc, job.job_id) == ["confirm" if status == "completed" else "release", "reserve"]
