"""What a worker tells: its job reports on ``audio.jobs.reports``, failed requests on the DLQ.

Reports go to the jobs service only (an internal topic): it applies each to the job and relays
those that change it to the public ``audio.jobs.events``, so a report that comes after the job
ended (cancelled, swept, a redelivered request run twice) never reaches other consumers.

``Publisher`` owns the Kafka producer. A send that fails or is not acknowledged within
``timeout_s`` raises ``BrokerUnavailable`` and drops the producer, so the next send builds a
new one: a broker restart or a fatal producer error never leaves the worker with a dead
producer. ``JobEvents`` builds one job's events; progress is throttled, end events wait for
the broker's acknowledgement (the consumer loop commits the request only after that).
"""

from __future__ import annotations

import threading
import time
import uuid

from google.protobuf.timestamp_pb2 import Timestamp
from kafka.errors import KafkaError

from services.common.kafka import headers, job_event_type, make_producer
from services.common.logging import get_logger
from services.common.pb.timbr.v1 import events_pb2
from services.common.settings import TOPIC_DLQ, TOPIC_REPORTS
from services.inference.errors import BrokerUnavailable

log = get_logger(__name__)


class Publisher:
    """Sends to Kafka; rebuilt after any producer error. Thread-safe."""

    def __init__(self, bootstrap: str, timeout_s: float = 30.0) -> None:
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._producer = None
        self._lock = threading.Lock()

    def _current(self):
        with self._lock:
            if self._producer is None:
                try:
                    self._producer = make_producer(self._bootstrap)
                except KafkaError as exc:
                    raise BrokerUnavailable(f"no Kafka producer for {self._bootstrap}: {exc!r}") from exc
            return self._producer

    def _drop(self, producer) -> None:
        with self._lock:
            if self._producer is producer:
                self._producer = None
        try:
            producer.close(timeout=0)
        except Exception as exc:  # noqa: BLE001 - it is being thrown away
            log.debug("producer.close_failed", error=repr(exc))

    def send(self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]], wait: bool) -> None:
        producer = self._current()
        try:
            future = producer.send(topic, key=key, value=value, headers=headers)
            if wait:
                future.get(timeout=self._timeout_s)
        except KafkaError as exc:
            log.warning("producer.failed", topic=topic, error=repr(exc))
            self._drop(producer)
            raise BrokerUnavailable(f"the broker did not take a message for {topic}: {exc!r}") from exc

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=5)


class JobEvents:
    """The reports (``JobEvent``) of one delivery of one job."""

    def __init__(self, publisher: Publisher, request: events_pb2.JobRequested, worker_id: str, attempt: int,
                 steps: tuple[str, ...]) -> None:
        self._publisher = publisher
        self._req = request
        self._worker_id = worker_id
        self._attempt = attempt
        self._steps = steps
        self._last_sent = 0.0
        self.progress = 0.0
        self.stage = "started"

    def _event(self, type_, **fields) -> events_pb2.JobEvent:
        at = Timestamp()
        at.GetCurrentTime()
        return events_pb2.JobEvent(event_id=uuid.uuid4().hex, job_id=self._req.job_id,
                                   account_id=self._req.account_id, job_type=self._req.job_type, type=type_,
                                   attempt=self._attempt, worker_id=self._worker_id, emitted_at=at, **fields)

    def _send(self, event: events_pb2.JobEvent, wait: bool) -> None:
        self._publisher.send(TOPIC_REPORTS, event.job_id, event.SerializeToString(),
                             headers(job_event_type(event.type), self._req.request_id), wait)

    def running(self) -> None:
        self._send(self._event(events_pb2.EVENT_TYPE_RUNNING, stage="started"), wait=True)

    def step(self, step: str, completed: float | None = None, total: float | None = None) -> None:
        """Map (step, completed/total) onto overall progress 0..1; sent on a new step or every 0.5 s."""
        within = (completed / total) if completed is not None and total else 0.0
        if step in self._steps:
            overall = (self._steps.index(step) + min(max(within, 0.0), 1.0)) / len(self._steps)
        else:
            overall = self.progress
        self.progress = max(self.progress, min(overall, 0.99))
        changed = step != self.stage
        self.stage = step
        if changed or time.monotonic() - self._last_sent >= 0.5:
            self.heartbeat()

    def heartbeat(self) -> None:
        self._last_sent = time.monotonic()
        self._send(self._event(events_pb2.EVENT_TYPE_PROGRESS, progress=self.progress, stage=self.stage),
                   wait=False)

    def completed(self, results: list[events_pb2.ResultObject], processing_s: float) -> None:
        self._send(self._event(events_pb2.EVENT_TYPE_COMPLETED, progress=1.0, stage="done", results=results,
                               processing_s=processing_s), wait=True)

    def failed(self, code: str, message: str) -> None:
        self._send(self._event(events_pb2.EVENT_TYPE_FAILED, stage=self.stage, error_code=code,
                               error_message=message[:2000]), wait=True)

    def dead_letter(self, reason: str) -> None:
        """Park the request itself on the dead-letter topic, the reason in a header."""
        self._publisher.send(TOPIC_DLQ, self._req.job_id, self._req.SerializeToString(),
                             headers("job.dead_lettered", self._req.request_id, error=reason[:500]), wait=True)
