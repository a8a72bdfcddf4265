"""The jobs service's Kafka loops against a real broker (tansu), with faults injected.

- The outbox publisher survives a broker restart: the next message is published by a rebuilt
  producer (issue 11: it stayed queued until the jobs service restarted).
- The events consumer, after a failed apply, rewinds every partition it fetched, so an event
  of another partition in the same batch is not skipped (issue 11: a COMPLETED event was, and
  its credits stayed reserved until a restart).
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition

from services.common.kafka import ensure_topics, make_producer
from services.common.migrate import migrated_sessionmaker
from services.common.pb.timbr.v1 import events_pb2
from services.common.settings import TOPIC_REPORTS, TOPIC_REQUESTED
from services.jobs.background import EventConsumer, outbox_publisher
from services.jobs.models import OutboxMessage
from tools.devbroker import free_port, start_broker


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.1)


@pytest.fixture
def broker(tmp_path):
    port = free_port()
    state = {"proc": start_broker(port, tmp_path / "kafka.log")}
    ensure_topics(f"127.0.0.1:{port}")

    def restart():
        state["proc"].kill()  # kill -9: the memory broker comes back empty
        state["proc"].wait(timeout=10)
        state["proc"] = start_broker(port, tmp_path / "kafka.log")

    yield f"127.0.0.1:{port}", restart
    state["proc"].kill()
    state["proc"].wait(timeout=10)


def _keys_on(bootstrap: str, topic: str, want: set[str], timeout_s: float = 30.0) -> set[str]:
    """Keys on every partition of ``topic``, read from the beginning until ``want`` are seen.
    The partitions are assigned by hand once the broker lists them: no group, no rebalance, and
    no subscription that a metadata answer from just after a restart could leave empty. Each try
    is a new consumer: one consumer once asked for 30 s and never got the topic (a CI run of
    2026-12-05), though the producer had its acknowledgement."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while not want <= seen and time.monotonic() < deadline:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        try:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.5)
                continue
            consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
            consumer.seek_to_beginning()
            round_end = min(deadline, time.monotonic() + 5.0)
            while not want <= seen and time.monotonic() < round_end:
                for records in consumer.poll(timeout_ms=500).values():
                    seen |= {r.key.decode() for r in records}
        finally:
            consumer.close()
    return seen


def test_outbox_publisher_rebuilds_its_producer_after_a_broker_restart(broker, tmp_path):
    bootstrap, restart = broker
    sessions = migrated_sessionmaker("jobs", f"sqlite:///{tmp_path / 'jobs.db'}")
    publisher = outbox_publisher(sessions, bootstrap, interval_s=0.1)
    publisher.start()

    def publish(key: str) -> None:
        with sessions.begin() as s:
            s.add(OutboxMessage(topic=TOPIC_REQUESTED, key=key, payload=key.encode()))

    def sent(key: str) -> bool:
        with sessions() as s:
            return s.query(OutboxMessage).filter_by(key=key).one().sent_at is not None

    try:
        publish("before")
        _wait(lambda: sent("before"), 20, "published before the restart")
        restart()
        publish("after")
        _wait(lambda: sent("after"), 40, "published after the broker restart")
        assert "after" in _keys_on(bootstrap, TOPIC_REQUESTED, {"after"})
    finally:
        publisher.stop()
        publisher.join(timeout=15)


def test_outbox_pending_gauge_counts_the_rows_still_waiting_after_a_partial_batch(broker, tmp_path):
    """The gauge that autoscaling and the dashboard read says how many rows wait, not that many
    minus those just sent (the count already excludes them: it read 0 with 3 waiting)."""
    from prometheus_client import CollectorRegistry, Gauge

    from services.common.outbox import OutboxPublisher

    bootstrap, _ = broker
    sessions = migrated_sessionmaker("jobs", f"sqlite:///{tmp_path / 'jobs.db'}")
    with sessions.begin() as s:
        s.add_all(OutboxMessage(topic=TOPIC_REQUESTED, key=f"k{i}", payload=b"x") for i in range(5))
    registry = CollectorRegistry()
    pending = Gauge("test_jobs_outbox_pending", "-", registry=registry)
    publisher = OutboxPublisher(sessions, OutboxMessage, bootstrap, pending, batch=2, keep_s=None, in_order=True)
    try:
        assert publisher.step() is True          # a full batch went out: more may wait
        with sessions() as s:
            waiting = s.query(OutboxMessage).filter(OutboxMessage.sent_at.is_(None)).count()
        assert waiting == 3
        assert registry.get_sample_value("test_jobs_outbox_pending") == 3
        publisher.step()
        assert publisher.step() is False         # the last row: a partial batch
        assert registry.get_sample_value("test_jobs_outbox_pending") == 0
    finally:
        publisher._drop_producer()


class _FailsOnce:
    """A jobs service whose first apply fails (a database hiccup), then applies everything."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.failures = 0
        self._lock = threading.Lock()

    def apply_event(self, event: events_pb2.JobEvent, record_headers=None) -> str:
        with self._lock:
            if self.failures == 0:
                self.failures += 1
                raise RuntimeError("injected: the first apply fails")
            self.applied.append(event.job_id)
        return "applied"


def test_events_consumer_rewinds_every_partition_it_fetched(broker):
    bootstrap, _ = broker
    producer = make_producer(bootstrap)
    jobs = [f"job_{p}_{i}" for p in range(3) for i in range(2)]
    for job_id in jobs:  # two events on each of the three partitions, all there before the first poll
        event = events_pb2.JobEvent(job_id=job_id, type=events_pb2.EVENT_TYPE_COMPLETED)
        producer.send(TOPIC_REPORTS, key=job_id, value=event.SerializeToString(), partition=int(job_id[4]))
    producer.flush(timeout=10)
    producer.close()

    service = _FailsOnce()
    consumer = EventConsumer(service, bootstrap, group=f"jobs-{uuid.uuid4().hex[:6]}")
    consumer.start()
    try:
        _wait(lambda: set(service.applied) == set(jobs), 30, f"every event applied (got {service.applied})")
    finally:
        consumer.stop()
        consumer.join(timeout=15)
    assert service.failures == 1
    assert sorted(service.applied) == sorted(jobs)  # each once: nothing skipped, nothing applied twice


def test_an_abandoned_running_job_is_swept_within_a_bounded_time_by_default():
    """Defaults: a running job with no event (heartbeats included) for 2 minutes is failed at the
    next sweep, 30 s later at most, not after 10 minutes; and that is 4 missed heartbeats, so a
    live worker is never swept. tests/platform/test_worker_crash.py runs it with 15 s."""
    from services.inference.config import WorkerSettings
    from services.jobs.config import JobsSettings

    jobs, worker = JobsSettings(), WorkerSettings()
    assert jobs.stale_running_s + jobs.sweep_interval_s <= 150
    assert jobs.stale_running_s >= 4 * worker.heartbeat_s


class _Records:
    def __init__(self) -> None:
        self.applied: list[str] = []

    def apply_event(self, event: events_pb2.JobEvent, record_headers=None) -> str:
        self.applied.append(event.job_id)
        return "applied"


def _reads_on_across_a_restart(broker, topic: str, value, start, seen) -> None:
    """Six records, read; the broker restarted empty; one more record, read too. ``value(key)``
    builds a record, ``start()`` starts the reader and returns its stop, ``seen()`` the keys read."""
    bootstrap, restart = broker

    def send(keys):
        producer = make_producer(bootstrap)
        for key in keys:
            producer.send(topic, key=key, value=value(key))
        producer.flush(timeout=10)
        producer.close()

    before = [f"job_b{i}" for i in range(6)]
    send(before)
    stop = start(bootstrap)
    try:
        _wait(lambda: set(before) <= set(seen()), 30, "records read before the restart")
        restart()
        ensure_topics(bootstrap)
        send(["job_after"])
        _wait(lambda: "job_after" in seen(), 45, "a record sent after the broker restart read")
    finally:
        stop()


def test_events_consumer_reads_on_after_the_broker_lost_its_log(broker):
    """The development broker restarts empty: the consumer's positions, whose commits the broker
    lost, are reset, so the events sent after the restart are applied (a COMPLETED event was not,
    and the job was swept as if no worker had run it). job_after lands on the partition that held
    one event (job_b0), at offset 0: the new end equals the old position, so the position alone
    would never show the loss (the bug behind this test's old xfail)."""
    service = _Records()

    def start(bootstrap):
        consumer = EventConsumer(service, bootstrap, group=f"jobs-{uuid.uuid4().hex[:6]}")
        consumer.start()
        return lambda: (consumer.stop(), consumer.join(timeout=15))

    _reads_on_across_a_restart(broker, TOPIC_REPORTS, lambda key: events_pb2.JobEvent(job_id=key).SerializeToString(),
                               start, lambda: service.applied)


class _Handled:
    """The worker's view of a runner: records the requests handed to it."""

    def __init__(self) -> None:
        self.job_ids: list[str] = []
        self.job_types, self.pipelines = ["enhance"], {}
        self.publisher = self

    def handle(self, request: events_pb2.JobRequested) -> None:
        self.job_ids.append(request.job_id)

    def close(self) -> None:
        pass


def test_worker_takes_requests_sent_after_the_broker_lost_its_log(broker):
    """The development broker restarts empty under an idle worker: its consumer, whose commits
    the broker lost, is rebuilt and takes the request sent after the restart. A consumer that
    only seeks back to offset 0 fetched nothing more (a fault-stack run swept the job created
    after a broker restart as never started)."""
    from services.inference.worker import Worker

    runner = _Handled()

    def start(bootstrap):
        worker = Worker(runner, bootstrap, group=f"workers-{uuid.uuid4().hex[:6]}", client_id="test-worker")
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        return lambda: (worker.stop(), thread.join(timeout=15))

    _reads_on_across_a_restart(
        broker, TOPIC_REQUESTED,
        lambda key: events_pb2.JobRequested(job_id=key, job_type="enhance").SerializeToString(),
        start, lambda: runner.job_ids)
