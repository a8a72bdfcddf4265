"""Every job ends with exactly one terminal event on audio.jobs.events: the jobs service writes
CANCELLED and TIMED_OUT to its outbox in the transaction that ends the job (SQLite and
PostgreSQL), and they reach the real broker through the running stack."""

from __future__ import annotations

import datetime as dt
import time

from kafka import KafkaConsumer, TopicPartition

from services.common.pb.timbr.v1 import events_pb2
from services.common.settings import TOPIC_EVENTS
from services.jobs.models import JobRecord, OutboxMessage
from tests.platform.test_jobs_service import env, event  # noqa: F401 - the fixture
from tests.support.api import upload_ok, wait_job
from tests.support.audio import tone_wav

END = {events_pb2.EVENT_TYPE_COMPLETED, events_pb2.EVENT_TYPE_FAILED, events_pb2.EVENT_TYPE_CANCELLED,
       events_pb2.EVENT_TYPE_TIMED_OUT}


def _events(sessions) -> list[events_pb2.JobEvent]:
    with sessions() as s:
        return [events_pb2.JobEvent.FromString(r.payload) for r in
                s.query(OutboxMessage).filter(OutboxMessage.topic == TOPIC_EVENTS).order_by(OutboxMessage.id)]


def test_cancel_and_sweep_write_one_terminal_event_each(env):  # noqa: F811
    jobs, _, acc, sessions = env
    cancelled = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    jobs.cancel_job(cancelled.job_id, acc)
    stale = jobs.create_job(acc, "enhance", {}, {"file": "f1"})
    jobs.apply_event(event(stale, events_pb2.EVENT_TYPE_RUNNING, attempt=1))
    with sessions.begin() as s:
        s.get(JobRecord, stale.job_id).updated_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=700)
    assert jobs.sweep(stale_running_s=600, stale_queued_s=86400) == 1
    assert jobs.sweep(stale_running_s=600, stale_queued_s=86400) == 0  # ended: never swept again

    got = _events(sessions)
    assert [(e.job_id, e.type) for e in got] == [(cancelled.job_id, events_pb2.EVENT_TYPE_CANCELLED),
                                                 (stale.job_id, events_pb2.EVENT_TYPE_TIMED_OUT)]
    assert got[0].account_id == acc and got[0].job_type == "enhance" and got[0].error_code == "cancelled"
    assert got[1].error_code == "timeout" and got[1].attempt == 1 and got[1].emitted_at.seconds > 0
    # The consumer in the jobs service reads them back from the topic: they change nothing.
    assert [jobs.apply_event(e) for e in got] == ["own", "own"]
    assert jobs.get_job(stale.job_id, acc).status == "failed"


def test_the_stack_publishes_exactly_one_end_per_job(api, make_account, stack):
    acc = make_account(20)
    f = upload_ok(api, acc.headers, tone_wav(1.0))
    done = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    # No worker runs separate in the test stack, so this one stays queued until cancelled.
    queued = api.post("/v1/audio/separate", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    assert wait_job(api, acc.headers, done)["status"] == "completed"
    assert api.post(f"/v1/jobs/{queued}/cancel", headers=acc.headers).status_code == 200

    # Read the topic from the start without a consumer group (no join to wait for), until both
    # ends are seen and then to the end of every partition, so a second end would be seen too.
    consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{stack.kafka_port}", enable_auto_commit=False)
    tps = [TopicPartition(TOPIC_EVENTS, p) for p in consumer.partitions_for_topic(TOPIC_EVENTS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends: dict[str, list[int]] = {done: [], queued: []}
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                for record in records:
                    e = events_pb2.JobEvent.FromString(record.value)
                    if e.job_id in ends and e.type in END:
                        ends[e.job_id].append(e.type)
            if all(ends.values()):
                last = consumer.end_offsets(tps)
                if all(consumer.position(tp) >= last[tp] for tp in tps):
                    break
    finally:
        consumer.close()
    assert ends == {done: [events_pb2.EVENT_TYPE_COMPLETED], queued: [events_pb2.EVENT_TYPE_CANCELLED]}
