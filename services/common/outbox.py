"""Transactional outbox publisher: rows committed with a state change are sent to Kafka.

A service writes an outbox row (topic, key, payload, headers) in the same transaction as the
change it announces; this loop sends pending rows in id order and marks each sent only after
the broker acknowledged it (acks=all). A record is thus published at least once and never for
a change that rolled back. After a send failure the producer is closed and rebuilt, so a broker
restart does not leave the loop on a dead connection. Rows sent more than ``keep_s`` ago are
deleted, at most once every ``prune_every_s``, so the table does not grow without end (``None``:
the service prunes them itself, as the jobs' retention sweeper does).

``in_order``: a second replica waits on the row locks instead of skipping the locked rows, so
rows go out in id order, one publisher at a time (the jobs: a job's events reach
``audio.jobs.events`` in the order they were written). ``make_topics``: missing topics are
created whenever a producer is built (the development broker comes back empty after a restart).
Both services use this one class: billing for its credit events, jobs for its job records.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from kafka.errors import KafkaError
from prometheus_client import Gauge
from sqlalchemy import delete, func, select

from services.common.db import utcnow
from services.common.kafka import ensure_topics, make_producer
from services.common.logging import get_logger

log = get_logger(__name__)


def delete_sent(sessions, model, older_than_s: float) -> int:
    """Delete the outbox rows of ``model`` sent more than ``older_than_s`` ago (the table would
    grow without end); rows not yet sent are kept. Returns how many."""
    with sessions.begin() as s:
        cutoff = utcnow() - dt.timedelta(seconds=older_than_s)
        return s.execute(delete(model).where(model.sent_at < cutoff)).rowcount or 0


class OutboxPublisher(threading.Thread):
    def __init__(self, sessions, model, bootstrap: str, pending: Gauge, interval_s: float = 0.2,
                 batch: int = 100, keep_s: float | None = 6 * 3600.0, prune_every_s: float = 60.0,
                 in_order: bool = False, make_topics: bool = False) -> None:
        super().__init__(name=f"outbox-{model.__tablename__}", daemon=True)
        self._sessions = sessions
        self._model = model
        self._kafka = bootstrap
        self._pending = pending
        self._interval_s = interval_s
        self._batch = batch
        self._keep_s = keep_s
        self._prune_every_s = prune_every_s
        self._in_order = in_order
        self._make_topics = make_topics
        self._next_prune = 0.0  # monotonic; the first pass prunes
        self._producer = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                self._maybe_prune()
                try:
                    busy = self.step()
                except Exception:
                    log.exception("outbox.error", table=self._model.__tablename__)
                    self._drop_producer()
                    busy = False
                if not busy:
                    self._stop_event.wait(self._interval_s)
        finally:
            self._drop_producer()

    def _maybe_prune(self) -> None:
        if self._keep_s is None or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + self._prune_every_s
        try:
            removed = self.prune()
        except Exception:  # the database away: sending fails too and says so; try again later
            log.exception("outbox.prune_failed", table=self._model.__tablename__)
            return
        if removed:
            log.info("outbox.pruned", table=self._model.__tablename__, rows=removed)

    def prune(self) -> int:
        return delete_sent(self._sessions, self._model, self._keep_s)

    def step(self) -> bool:
        """Send one batch; True when it was full and sent whole (more may wait)."""
        m = self._model
        if self._producer is None:
            if self._make_topics:
                ensure_topics(self._kafka, timeout_s=5.0)
            self._producer = make_producer(self._kafka)
        sent = 0
        with self._sessions.begin() as s:
            rows = list(s.scalars(select(m).where(m.sent_at.is_(None)).order_by(m.id).limit(self._batch)
                                  .with_for_update(skip_locked=not self._in_order)))
            for row in rows:
                row.attempts += 1
                try:
                    self._producer.send(row.topic, key=row.key, value=row.payload,
                                        headers=[(k, v.encode()) for k, v in row.headers or []]).get(timeout=10)
                except KafkaError as exc:
                    log.warning("outbox.send_failed", table=m.__tablename__, key=row.key, attempts=row.attempts,
                                error=str(exc))
                    self._drop_producer()
                    break
                row.sent_at = utcnow()
                sent += 1
            s.flush()   # the rows just sent are counted as sent
            pending = s.scalar(select(func.count()).select_from(m).where(m.sent_at.is_(None))) or 0
        self._pending.set(pending)
        return sent == self._batch

    def _drop_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)
            except Exception as exc:  # noqa: BLE001 - closing a broken producer may fail too
                log.debug("outbox.close_failed", error=str(exc))
            self._producer = None
