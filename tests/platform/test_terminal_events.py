"""Every job ends with exactly one terminal event on audio.jobs.events. Workers report on the
internal audio.jobs.reports; the jobs service writes to its outbox, in the transaction that
changes the job, the reports that change it (as they came) and the ends it decides itself
(CANCELLED, TIMED_OUT). A report for a job that has ended publishes nothing. Checked on SQLite
and PostgreSQL, and through the running stack and its broker."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.common.kafka import headers, job_event_type
from services.common.pb.timbr.v1 import events_pb2
from services.common.settings import TOPIC_EVENTS, TOPIC_REPORTS
from services.jobs.models import JobRecord, OutboxMessage, utcnow
from tests.platform.test_jobs_service import env, event  # noqa: F401 - the fixture
from tests.support.api import upload_ok, wait_job
from tests.support.audio import tone_wav

END = {events_pb2.EVENT_TYPE_COMPLETED, events_pb2.EVENT_TYPE_FAILED, events_pb2.EVENT_TYPE_CANCELLED,
       events_pb2.EVENT_TYPE_TIMED_OUT}
T = events_pb2


def _outbox(sessions) -> list[OutboxMessage]:
    with sessions() as s:
        return list(s.query(OutboxMessage).filter(OutboxMessage.topic == TOPIC_EVENTS).order_by(OutboxMessage.id))


def _events(sessions) -> list[events_pb2.JobEvent]:
    return [events_pb2.JobEvent.FromString(r.payload) for r in _outbox(sessions)]


def test_cancel_and_sweep_write_one_terminal_event_each(env):  # noqa: F811
    jobs, _, acc, sessions = env
    cancelled = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    jobs.cancel_job(cancelled.job_id, acc)
    stale = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    jobs.apply_event(event(stale, T.EVENT_TYPE_RUNNING, attempt=1))
    with sessions.begin() as s:
        s.get(JobRecord, stale.job_id).updated_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=700)
    assert jobs.sweep(stale_running_s=600, stale_queued_s=86400) == 1
    assert jobs.sweep(stale_running_s=600, stale_queued_s=86400) == 0  # ended: never swept again

    got = _events(sessions)
    assert [(e.job_id, e.type) for e in got] == [(cancelled.job_id, T.EVENT_TYPE_CANCELLED),
                                                 (stale.job_id, T.EVENT_TYPE_RUNNING),
                                                 (stale.job_id, T.EVENT_TYPE_TIMED_OUT)]
    assert got[0].account_id == acc and got[0].job_type == "enhance" and got[0].error_code == "cancelled"
    assert got[2].error_code == "timeout" and got[2].attempt == 1 and got[2].emitted_at.seconds > 0

    # The worker finishes anyway: its reports come after the end and publish nothing.
    assert jobs.apply_event(event(cancelled, T.EVENT_TYPE_COMPLETED, progress=1.0)) == "duplicate"
    assert jobs.apply_event(event(stale, T.EVENT_TYPE_PROGRESS, progress=0.9)) == "duplicate"
    assert jobs.apply_event(event(stale, T.EVENT_TYPE_FAILED, error_code="x")) == "duplicate"
    assert len(_events(sessions)) == 3
    assert jobs.get_job(cancelled.job_id, acc).status == "cancelled"
    assert jobs.get_job(stale.job_id, acc).status == "failed"


def test_reports_are_relayed_as_they_came_and_never_after_the_end(env):  # noqa: F811
    jobs, _, acc, sessions = env
    job = jobs.create_job(acc, "enhance", {}, {"file": "f1"}, request_id="req-relay")

    def report(type_, **kw):
        e = events_pb2.JobEvent(event_id=uuid.uuid4().hex, job_id=job.job_id, account_id=acc,
                                job_type="enhance", type=type_, worker_id="w-1", attempt=1, **kw)
        return e, headers(job_event_type(type_), "req-relay")

    running, progress = report(T.EVENT_TYPE_RUNNING, stage="started"), report(T.EVENT_TYPE_PROGRESS, progress=0.5)
    done = report(T.EVENT_TYPE_COMPLETED, progress=1.0, stage="done",
                  results=[events_pb2.ResultObject(name="a.wav", storage_key="silver/a.wav", size_bytes=3)])
    late = report(T.EVENT_TYPE_PROGRESS, progress=0.7)
    other = report(T.EVENT_TYPE_CANCELLED)  # not a worker's to say: changes and publishes nothing
    outcomes = [jobs.apply_event(*r) for r in (running, other, progress, done, done, late)]
    assert outcomes == ["running", "ignored", "progress", "completed", "duplicate", "duplicate"]

    rows = _outbox(sessions)
    assert [events_pb2.JobEvent.FromString(r.payload) for r in rows] == [running[0], progress[0], done[0]]
    assert {r.key for r in rows} == {job.job_id}
    assert [dict(r.headers) for r in rows] == [{"x-request-id": "req-relay", "event-type": t,
                                                "schema-version": "timbr.v1"}
                                               for t in ("job.running", "job.progress", "job.completed")]
    # Without the record's headers (a direct call) they are rebuilt from the job.
    second = jobs.create_job(acc, "enhance", {}, {"file": "f1"}, request_id="req-two")
    jobs.apply_event(event(second, T.EVENT_TYPE_FAILED, error_code="invalid_audio"))
    assert dict(_outbox(sessions)[-1].headers)["x-request-id"] == "req-two"
    assert dict(_outbox(sessions)[-1].headers)["event-type"] == "job.failed"


def test_sent_outbox_rows_are_pruned_after_a_while(env):  # noqa: F811
    jobs, _, _, sessions = env
    now = utcnow()
    with sessions.begin() as s:
        s.add_all([OutboxMessage(topic=TOPIC_EVENTS, key="old", payload=b"", sent_at=now - dt.timedelta(hours=7)),
                   OutboxMessage(topic=TOPIC_EVENTS, key="recent", payload=b"", sent_at=now - dt.timedelta(hours=1)),
                   OutboxMessage(topic=TOPIC_EVENTS, key="unsent", payload=b"",
                                 created_at=now - dt.timedelta(hours=9))])
    assert jobs.prune_outbox(6 * 3600) == 1
    assert {r.key for r in _outbox(sessions)} == {"recent", "unsent"}


def _public_events(bootstrap: str, job_ids: list[str], timeout_s: float = 30.0) -> dict[str, list[int]]:
    """Each job's event types on audio.jobs.events, read from the start without a consumer group
    (no join to wait for), until every job has ended and then to the end of every partition, so
    that a second end would be seen too."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tps = [TopicPartition(TOPIC_EVENTS, p) for p in consumer.partitions_for_topic(TOPIC_EVENTS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen: dict[str, list[int]] = {job_id: [] for job_id in job_ids}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                for record in records:
                    e = events_pb2.JobEvent.FromString(record.value)
                    if e.job_id in seen:
                        seen[e.job_id].append(e.type)
            if all(END & set(types) for types in seen.values()):
                last = consumer.end_offsets(tps)
                if all(consumer.position(tp) >= last[tp] for tp in tps):
                    break
    finally:
        consumer.close()
    return seen


def test_the_stack_publishes_exactly_one_end_per_job(api, make_account, stack):
    acc = make_account(20)
    f = upload_ok(api, acc.headers, tone_wav(1.0))
    done = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    # No worker runs separate in the test stack, so these stay queued until cancelled.
    queued = api.post("/v1/audio/separate", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    probe = api.post("/v1/audio/separate", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    assert wait_job(api, acc.headers, done)["status"] == "completed"
    assert api.post(f"/v1/jobs/{queued}/cancel", headers=acc.headers).status_code == 200

    # Late worker reports: a second COMPLETED for the completed job (a redelivered request run
    # again) and a COMPLETED for the cancelled one. Then a RUNNING for the probe on the same
    # partition: once the probe reads as running, the jobs service has applied the two before it.
    producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{stack.kafka_port}")
    for job_id, type_ in ((done, T.EVENT_TYPE_COMPLETED), (queued, T.EVENT_TYPE_COMPLETED),
                          (probe, T.EVENT_TYPE_RUNNING)):
        report = events_pb2.JobEvent(event_id=uuid.uuid4().hex, job_id=job_id, account_id=acc.account_id,
                                     type=type_, progress=1.0 if type_ == T.EVENT_TYPE_COMPLETED else 0.0)
        producer.send(TOPIC_REPORTS, key=job_id.encode(), value=report.SerializeToString(), partition=0,
                      headers=headers(job_event_type(type_))).get(timeout=10)
    producer.close()
    assert wait_job(api, acc.headers, probe, timeout_s=30, until={"running"})["status"] == "running"
    assert api.post(f"/v1/jobs/{probe}/cancel", headers=acc.headers).status_code == 200
    assert api.get(f"/v1/jobs/{queued}", headers=acc.headers).json()["status"] == "cancelled"

    seen = _public_events(f"127.0.0.1:{stack.kafka_port}", [done, queued, probe])
    assert [t for t in seen[done] if t in END] == [T.EVENT_TYPE_COMPLETED]
    assert seen[done][0] == T.EVENT_TYPE_RUNNING and seen[done][-1] == T.EVENT_TYPE_COMPLETED  # nothing after
    assert seen[queued] == [T.EVENT_TYPE_CANCELLED]
    assert seen[probe] == [T.EVENT_TYPE_RUNNING, T.EVENT_TYPE_CANCELLED]
