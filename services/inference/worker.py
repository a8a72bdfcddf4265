"""The inference worker's Kafka consumer loop: poll, pause, hand off, commit.

Guarantee: at-least-once. Auto-commit is off; a request's offset is committed only after
``JobRunner.handle`` returned, that is after the job's end event (completed or failed) was
acknowledged by the broker (the report on ``audio.jobs.reports``). A worker that dies mid-job leaves the offset uncommitted, the
group rebalances, and another worker runs the job again. That is safe because results are
written under deterministic keys, the runner skips jobs the jobs service says have ended, and
the jobs service applies events idempotently (Billing charges a job at most once).

While a job runs in a helper thread, the loop keeps polling with its partitions paused, so the
member stays in its group (heartbeats, rebalances) however long the job takes.

When the jobs service or the broker is away (``DependencyUnavailable``), the worker does not
exit: it rewinds to the request, waits (backoff doubling up to a cap) and hands it off again;
the runner's ``Publisher`` has already dropped a failed producer, so the retry builds a new one.
A broker that lost its log and its group's commits (the development memory broker after a
restart) is noticed while idle (``lost_commits``): the worker then closes its consumer and
builds a new one, which reads from the start, so new requests there are not skipped (a consumer
that lived through the restart fetched nothing more); ended jobs among the old ones are skipped
by the runner.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from google.protobuf.message import DecodeError
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from services.common.kafka import lost_commits, make_consumer
from services.common.logging import get_logger
from services.common.pb.timbr.v1 import events_pb2
from services.common.settings import TOPIC_REQUESTED
from services.inference.errors import DependencyUnavailable
from services.inference.runner import JobRunner

log = get_logger(__name__)


class Worker:
    def __init__(self, runner: JobRunner, bootstrap: str, group: str, client_id: str,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        self.runner = runner
        self.bootstrap = bootstrap
        self.group = group
        self.client_id = client_id
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.consuming = threading.Event()   # subscribed and polling: part of readiness
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def _consumer(self):
        return make_consumer(self.bootstrap, self.group, TOPIC_REQUESTED, client_id=self.client_id)

    def run(self) -> None:
        consumer = self._consumer()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job")
        log.info("worker.started", group=self.group, job_types=self.runner.job_types,
                 pipelines=sorted(self.runner.pipelines))
        self.consuming.set()
        checked_at = time.monotonic()
        try:
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=500, max_records=1)
                for tp, records in batch.items():
                    for record in records:
                        self._deliver(consumer, executor, tp, record)
                if not batch and time.monotonic() - checked_at >= 5.0:
                    checked_at = time.monotonic()
                    if self._broker_lost_commits(consumer):
                        with contextlib.suppress(Exception):   # it is being thrown away
                            consumer.close()
                        consumer = self._consumer()   # reads from the start: the group has no commits
        finally:
            self.consuming.clear()
            executor.shutdown(wait=True)
            consumer.close()
            self.runner.publisher.close()

    @staticmethod
    def _broker_lost_commits(consumer) -> bool:
        """Did the broker lose the group's commits? Then the requests are read again from the start
        by a new consumer (a job that ended is skipped by the runner), or new ones would be missed."""
        try:
            lost = lost_commits(consumer)
        except KafkaError as exc:
            log.warning("worker.rewind_check_failed", error=repr(exc))
            return False
        if lost:
            log.warning("worker.commit_lost", partitions=lost)
        return bool(lost)

    def _deliver(self, consumer, executor: ThreadPoolExecutor, tp, record) -> None:
        """Hand one request to the runner until it is done, then commit it."""
        try:
            request = events_pb2.JobRequested.FromString(record.value)
        except DecodeError:
            log.error("request.undecodable", partition=tp.partition, offset=record.offset)
            self._commit(consumer, tp, record)
            return
        wait_s = self.backoff_s
        while True:
            future = executor.submit(self.runner.handle, request)
            self._wait_paused(consumer, future)
            try:
                future.result()
                break
            except Exception as exc:  # nothing may stop the worker: the request comes again
                if isinstance(exc, DependencyUnavailable):
                    log.warning("worker.dependency_unavailable", job_id=request.job_id, error=exc.message,
                                retry_in_s=wait_s)
                else:
                    log.exception("worker.handler_failed", job_id=request.job_id, retry_in_s=wait_s)
            self._wait_paused(consumer, self._stop, wait_s)
            if self._stop.is_set():
                return  # uncommitted: the next member of the group runs it
            wait_s = min(self.max_backoff_s, wait_s * 2)
        self._commit(consumer, tp, record)

    def _wait_paused(self, consumer, done, timeout_s: float | None = None) -> None:
        """Poll with every partition paused until ``done`` (a future or an event) or the timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not done.done() if isinstance(done, Future) else not done.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            try:
                consumer.pause(*consumer.assignment())  # again after any rebalance
                for other_tp, others in consumer.poll(timeout_ms=200).items():
                    consumer.seek(other_tp, others[0].offset)  # fetched before the pause: read it later
            except KafkaError as exc:
                log.warning("worker.poll_failed", error=repr(exc))
                time.sleep(0.2)
        try:
            consumer.resume(*consumer.paused())
        except KafkaError as exc:
            log.warning("worker.resume_failed", error=repr(exc))

    def _commit(self, consumer, tp, record) -> None:
        try:
            consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
        except KafkaError:
            # The partition moved to another member meanwhile; it may run the job again, which
            # is safe (the job is finished, so it is skipped).
            log.warning("worker.commit_failed", partition=tp.partition, offset=record.offset)
