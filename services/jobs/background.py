"""The jobs service's background loops: outbox publisher, event consumer, credit settler,
stale-job sweeper, retention sweeper.

Outbox: rows committed with their job are sent to Kafka and marked sent only after the broker
acknowledges them (acks=all), so a record is published at least once (workers skip jobs
already finished; event consumers dedupe by event id). Rows go out in id order, one publisher
at a time (a second replica waits on the row locks instead of skipping them), so a job's
events reach ``audio.jobs.events`` in the order they were written.

Outbox publisher (``services.common.outbox``, the class billing uses too): a failed send drops
the producer and the next pass builds a new one (and recreates missing topics: the development
broker comes back empty), so a broker restart or a fatal producer error delays publishing,
never stops it.

Event consumer: reads the workers' reports (``audio.jobs.reports``), at-least-once. Auto-commit
is off; the offset is committed after the report has been applied (the credits it owes and
the public event it makes are recorded with it). A failure rewinds every partition
of the batch to its first event not applied, so nothing fetched is skipped, and the event comes
again; ``JobsService.apply_event`` is idempotent. A Kafka error rebuilds the consumer, and a
partition read past offset 0 whose committed offset the group lost (a broker that lost its log
and its groups, as the development broker on memory storage does when it restarts) starts
again from the beginning, since no error says so.
"""

from __future__ import annotations

import contextlib
import threading
import time

from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from services.common.kafka import lost_commits, make_consumer
from services.common.logging import get_logger
from services.common.outbox import OutboxPublisher
from services.common.pb.timbr.v1 import events_pb2
from services.common.settings import TOPIC_REPORTS
from services.jobs import metrics
from services.jobs.models import OutboxMessage
from services.jobs.service import JobsService

log = get_logger(__name__)
# No Kafka call of these loops may block for ever (kafka-python's commit waits without limit).
KAFKA_CALL_MS = 5000


class Loop(threading.Thread):
    """A daemon thread running ``step()`` until stopped; errors are logged and retried."""

    interval_s = 1.0

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                try:
                    busy = self.step()
                except Exception:
                    log.exception(f"{self.name}.error")
                    busy = False
                if not busy:
                    self._stop_event.wait(self.interval_s)
        finally:
            self.close()

    def step(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        pass


def outbox_publisher(sessions, bootstrap: str, interval_s: float = 0.2) -> OutboxPublisher:
    """The jobs' outbox publisher: rows in id order, topics recreated with each new producer; the
    retention sweeper prunes the sent rows."""
    return OutboxPublisher(sessions, OutboxMessage, bootstrap, metrics.OUTBOX_PENDING, interval_s,
                           keep_s=None, in_order=True, make_topics=True)


class EventConsumer(Loop):
    """Applies the workers' reports to the jobs (and relays them to ``audio.jobs.events``)."""

    def __init__(self, service: JobsService, bootstrap: str, group: str) -> None:
        super().__init__("events")
        self._service = service
        self._kafka = bootstrap
        self._group = group
        self._consumer = None
        self.interval_s = 0.5
        self._checked_at = 0.0

    def step(self) -> bool:
        if self._consumer is None:
            self._consumer = make_consumer(self._kafka, self._group, TOPIC_REPORTS, client_id="timbr-jobs")
        consumer = self._consumer
        try:
            batch = consumer.poll(timeout_ms=500, max_records=50)
            if not batch and self._broker_lost_commits(consumer):
                self._drop_consumer()          # the next step reads from the start with a new one
                return False
        except KafkaError:
            self._drop_consumer()
            raise
        applied: dict = {}  # partition -> offset of the next event not applied
        try:
            for tp, records in batch.items():
                for record in records:
                    event = events_pb2.JobEvent.FromString(record.value)
                    outcome = self._service.apply_event(event, record.headers)
                    applied[tp] = record.offset + 1
                    consumer.commit({tp: _offset(record.offset + 1)}, timeout_ms=KAFKA_CALL_MS)
                    log.info("event.applied", job_id=event.job_id, type=events_pb2.EventType.Name(event.type),
                             outcome=outcome)
                try:
                    end = consumer.end_offsets([tp], timeout_ms=KAFKA_CALL_MS)[tp]
                    metrics.CONSUMER_LAG.labels(tp.topic).set(max(0, end - (records[-1].offset + 1)))
                except KafkaError:
                    pass
        except KafkaError:
            # The broker or the group went away mid-batch (a commit that cannot complete): a new
            # consumer starts again from the committed offsets; re-applying changes nothing.
            self._drop_consumer()
            raise
        except Exception:
            # Not applied: rewind EVERY partition of the batch to its first event not applied,
            # or the events fetched after the failing one would be skipped.
            for tp, records in batch.items():
                consumer.seek(tp, applied.get(tp, records[0].offset))
            raise
        return bool(batch)

    def _broker_lost_commits(self, consumer, every_s: float = 5.0) -> bool:
        """While idle, every few seconds: did the broker lose the group's commits (``lost_commits``;
        re-applying events changes nothing)?"""
        if time.monotonic() - self._checked_at < every_s or not consumer.assignment():
            return False
        self._checked_at = time.monotonic()
        lost = lost_commits(consumer, KAFKA_CALL_MS)
        if lost:
            log.warning("events.commit_lost", partitions=lost)
        return bool(lost)

    def _drop_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        with contextlib.suppress(Exception):  # it is being thrown away
            consumer.close()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


def _offset(offset: int) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, "", -1)


class Settler(Loop):
    """Settles the credits of ended jobs that Billing did not acknowledge when they ended."""

    def __init__(self, service: JobsService, interval_s: float) -> None:
        super().__init__("settler")
        self._service = service
        self.interval_s = interval_s

    def step(self) -> bool:
        return self._service.settle_pending() > 0


class Sweeper(Loop):
    def __init__(self, service: JobsService, stale_running_s: float, stale_queued_s: float,
                 interval_s: float) -> None:
        super().__init__("sweeper")
        self._service = service
        self._limits = (stale_running_s, stale_queued_s)
        self.interval_s = interval_s

    def step(self) -> bool:
        self._service.sweep(*self._limits)
        self._service.release_orphans()
        return False


class RetentionSweeper(Loop):
    """Removes uploads and results past their retention, idempotency keys past 24 h, and outbox
    rows sent more than ``outbox_keep_s`` ago."""

    def __init__(self, service: JobsService, interval_s: float, outbox_keep_s: float = 6 * 3600.0) -> None:
        super().__init__("retention")
        self._service = service
        self._outbox_keep_s = outbox_keep_s
        self.interval_s = interval_s

    def step(self) -> bool:
        removed = self._service.lifecycle.sweep()
        self._service.keys.purge()
        self._service.prune_outbox(self._outbox_keep_s)
        return removed > 0
