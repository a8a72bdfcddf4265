"""Job rules: files, the job state machine, credits through Billing, and the outbox.

States: queued -> running -> completed | failed | cancelled (queued may also go straight to
any end state). End states are final. Events are applied idempotently: a duplicate or late
event never moves a finished job.

Credits are never stranded: the transaction that ends a job also writes what it owes Billing
(a ``Settlement``: confirm or release). Billing is asked right after the commit; if it does not
answer, the row stays pending and ``settle_pending`` (the jobs service's settler loop) retries
it until it does. Confirm and Release are idempotent in Billing, so a retry never charges or
releases twice. The settlement's primary key also makes a job end exactly once.

The public ``audio.jobs.events`` is written by this service alone, through the outbox, in the
transaction that changes the job: a worker's report (``audio.jobs.reports``) that changes the
job is relayed as it came (same event id, fields and headers), one for a job that has ended is
not; cancel and the sweeper announce the ends they decide. So per job the topic carries its
events in order and exactly one end (published at least once: consumers dedupe by event id).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.common.kafka import headers, job_event_type
from services.common.logging import get_logger
from services.common.outbox import delete_sent
from services.common.pb.timbr.v1 import events_pb2
from services.common.settings import TOPIC_EVENTS, TOPIC_REQUESTED
from services.common.storage import Storage
from services.jobs import metrics
from services.jobs.accounts import AccountSettingsStore
from services.jobs.billing_client import BillingClient
from services.jobs.errors import (
    FileNotFound,
    InvalidRequest,
    InvalidState,
    JobNotFound,
    Unavailable,
)
from services.jobs.idempotency import IdempotencyKeys, fingerprint
from services.jobs.lifecycle import Lifecycle, gone
from services.jobs.models import (
    FileRecord,
    JobRecord,
    OutboxMessage,
    Settlement,
    WebhookAttempt,
    WebhookDelivery,
    utcnow,
)

log = get_logger(__name__)
TERMINAL = frozenset({"completed", "failed", "cancelled"})
SETTLE = {"completed": "confirm", "failed": "release", "cancelled": "release"}
JOB_TYPES = frozenset({"separate", "enhance", "diarize"})


def _public(event: events_pb2.JobEvent, record_headers: list[tuple[str, bytes]]) -> OutboxMessage:
    """The outbox row that publishes ``event`` on ``audio.jobs.events``, keyed by job."""
    return OutboxMessage(topic=TOPIC_EVENTS, key=event.job_id, payload=event.SerializeToString(),
                         headers=[[k, (v or b"").decode("utf-8", "replace")] for k, v in record_headers])


def credits_for(duration_s: float) -> int:
    """1 credit per second of input audio, rounded up (a 0.2 s file costs 1)."""
    return max(1, math.ceil(round(duration_s, 6)))


def _plain_id(value: str) -> bool:
    """Ids are short printable ASCII; anything else (a NUL from a URL, 20 KB) names nothing."""
    return 0 < len(value) <= 40 and value.isascii() and value.isprintable()


def _new_job_id() -> str:
    return f"job_{uuid.uuid4().hex[:24]}"


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


class JobsService:
    def __init__(self, sessions: sessionmaker, billing: BillingClient, storage: Storage | None = None,
                 retention_days: float = 7.0, idempotency_wait_s: float = 15.0) -> None:
        self._sessions = sessions
        self._billing = billing
        self.accounts = AccountSettingsStore(sessions, retention_days,
                                             billing.account_exists if billing is not None else None)
        self.keys = IdempotencyKeys(sessions, wait_s=idempotency_wait_s)
        self.lifecycle = Lifecycle(sessions, storage, self.accounts)

    # files ---------------------------------------------------------------------------------------

    def register_file(self, record: FileRecord, idempotency_key: str = "", fp: str = "") -> FileRecord:
        """Store a file's record. With an idempotency key, a repeat returns the first file with
        ``replayed`` set (the caller then drops the object it stored for nothing)."""
        record.replayed = False
        if not idempotency_key:
            with self._sessions.begin() as s:
                s.add(record)
            return self._with_expiry(record)
        _, existing = self.keys.claim(record.account_id, idempotency_key, "upload", fp or "-", record.file_id,
                                      existing=lambda s, file_id: s.get(FileRecord, file_id),
                                      create=lambda s: s.add(record))
        if existing is not None:
            existing.replayed = True
            return self._with_expiry(existing)
        return self._with_expiry(record)

    def get_file(self, file_id: str, account_id: str | None, usable: bool = False) -> FileRecord:
        """``usable``: raise ``Gone`` (410) for a file removed from storage."""
        if not _plain_id(file_id):
            raise FileNotFound(f"file {file_id[:40]!r} not found")
        with self._sessions() as s:
            f = s.get(FileRecord, file_id)
            if f is None or (account_id and f.account_id != account_id):
                raise FileNotFound(f"file {file_id} not found")
            if usable and f.removed:
                raise gone(f"file {file_id}", f.removed, self.accounts.retention_days(f.account_id, s))
            return self._with_expiry(f, s)

    def _with_expiry(self, f: FileRecord, s=None) -> FileRecord:
        days = self.accounts.retention_days(f.account_id, s)
        f.expires_at = None if f.removed else _aware(f.created_at or utcnow()) + dt.timedelta(days=days)
        return f

    def delete_file(self, file_id: str, account_id: str | None) -> FileRecord:
        if not _plain_id(file_id):
            raise FileNotFound(f"file {file_id[:40]!r} not found")
        return self._with_expiry(self.lifecycle.delete_file(file_id, account_id or ""))

    # jobs ----------------------------------------------------------------------------------------

    def create_job(self, account_id: str, job_type: str, params: dict, input_file_ids: dict[str, str],
                   request_id: str = "", idempotency_key: str = "", webhook_url: str = "") -> JobRecord:
        """Reserve the credits and queue the job (job row and outbox message commit together).

        With an idempotency key, a repeat of the same request returns the first job with
        ``replayed`` set and reserves nothing; a different request with that key is refused.
        """
        if job_type not in JOB_TYPES:
            raise InvalidRequest(f"unknown job type {job_type!r}")
        if "file" not in input_file_ids:
            raise InvalidRequest("a job needs an input file")
        inputs: dict[str, dict] = {}
        for name, file_id in input_file_ids.items():
            f = self.get_file(file_id, account_id, usable=True)
            want = "subtitle" if name == "input_srt" else "audio"
            if f.kind != want:
                field = "input_srt_file_id" if name == "input_srt" else "file_id"
                raise InvalidRequest(f"{field} {file_id} is a {f.kind} file, not {want}")
            inputs[name] = {"file_id": f.file_id, "storage_key": f.storage_key, "kind": f.kind}
        main = self.get_file(input_file_ids["file"], account_id)
        credits = credits_for(main.duration_s)
        job_id = _new_job_id()
        if idempotency_key:
            fp = fingerprint(job_type, params, input_file_ids, webhook_url)
            job_id, existing = self.keys.claim(account_id, idempotency_key, job_type, fp, job_id,
                                               existing=lambda s, jid: s.get(JobRecord, jid))
            if existing is not None:
                existing.replayed = True
                log.info("job.replayed", job_id=job_id, account=account_id, key=idempotency_key)
                return self._decorate(existing)

        try:
            job_id = self._reserve_fresh(job_id, account_id, credits, request_id, idempotency_key)
        except Exception:
            if idempotency_key:
                self.keys.release(account_id, idempotency_key, job_id)
            raise
        now = utcnow()
        job = JobRecord(job_id=job_id, account_id=account_id, job_type=job_type, status="queued", params=params,
                        inputs=inputs, file_id=main.file_id, duration_s=main.duration_s,
                        credits_reserved=credits, request_id=request_id, created_at=now, updated_at=now,
                        results=[], webhook_url=webhook_url)
        try:
            with self._sessions.begin() as s:  # job row and outbox row commit together, or neither
                for name, obj in inputs.items():  # lock the inputs: a delete waits, or we see it
                    f = s.get(FileRecord, obj["file_id"], with_for_update=True)
                    if f.removed:
                        raise gone(f"file {f.file_id}", f.removed, self.accounts.retention_days(account_id, s))
                s.add(job)
                s.add(OutboxMessage(topic=TOPIC_REQUESTED, key=job_id,
                                    payload=self._requested(job).SerializeToString(),
                                    headers=[[k, v.decode()] for k, v in headers("job.requested", request_id)]))
        except IntegrityError:
            if idempotency_key:  # a concurrent request with the same key inserted this job first
                return self.create_job(account_id, job_type, params, input_file_ids, request_id,
                                       idempotency_key, webhook_url)
            self._settle(job_id, "release")
            raise
        except Exception:
            self._settle(job_id, "release")
            if idempotency_key:
                self.keys.release(account_id, idempotency_key, job_id)
            raise
        job.replayed = False
        metrics.JOBS.labels(job_type, "queued").inc()
        log.info("job.created", job_id=job_id, account=account_id, job_type=job_type, credits=credits)
        return self._decorate(job)

    def _reserve_fresh(self, job_id: str, account_id: str, credits: int, request_id: str, key: str) -> str:
        """Reserve for ``job_id``; a taken-over claim whose reservation the orphan sweeper already
        released moves to a fresh job id. Returns the job id reserved for."""
        state = self._reserve(job_id, account_id, credits, request_id)
        if state == "reserved" or not key:
            return job_id
        fresh = _new_job_id()
        self.keys.rotate(account_id, key, job_id, fresh)
        self._reserve(fresh, account_id, credits, request_id)
        return fresh

    def _requested(self, job: JobRecord) -> events_pb2.JobRequested:
        at = Timestamp()
        at.FromDatetime(job.created_at)
        return events_pb2.JobRequested(
            job_id=job.job_id, account_id=job.account_id, job_type=job.job_type,
            params_json=json.dumps(job.params), duration_s=job.duration_s, request_id=job.request_id,
            requested_at=at, credits_reserved=job.credits_reserved,
            inputs={k: events_pb2.InputObject(**v) for k, v in job.inputs.items()})

    def _reserve(self, job_id: str, account_id: str, credits: int, request_id: str) -> str:
        return self._billing.reserve(job_id, account_id, credits, request_id)

    def _settle(self, job_id: str, how: str) -> None:
        """Confirm or release a job's credits; idempotent, raises Unavailable to be retried."""
        self._billing.settle(job_id, how)

    def get_job(self, job_id: str, account_id: str | None) -> JobRecord:
        if not _plain_id(job_id):
            raise JobNotFound(f"job {job_id[:40]!r} not found")
        with self._sessions() as s:
            job = s.get(JobRecord, job_id)
            if job is None or (account_id and job.account_id != account_id):
                raise JobNotFound(f"job {job_id} not found")
            return self._decorate(job, s)

    def list_jobs(self, account_id: str, limit: int = 50) -> list[JobRecord]:
        with self._sessions() as s:
            q = (select(JobRecord).where(JobRecord.account_id == account_id)
                 .order_by(JobRecord.created_at.desc()).limit(min(max(limit, 1), 500)))
            days = self.accounts.retention_days(account_id, s)
            return [self._decorate(j, days=days) for j in s.scalars(q)]

    def _decorate(self, job: JobRecord, s=None, days: float | None = None) -> JobRecord:
        """Adds ``results_expire_at`` (completed jobs whose results are still stored)."""
        job.results_expire_at = None
        if job.status == "completed" and not job.results_removed and job.finished_at is not None:
            days = days if days is not None else self.accounts.retention_days(job.account_id, s)
            job.results_expire_at = _aware(job.finished_at) + dt.timedelta(days=days)
        if not hasattr(job, "replayed"):
            job.replayed = False
        return job

    def delete_job_results(self, job_id: str, account_id: str | None) -> JobRecord:
        if not _plain_id(job_id):
            raise JobNotFound(f"job {job_id[:40]!r} not found")
        return self._decorate(self.lifecycle.delete_job_results(job_id, account_id or ""))

    # webhooks ------------------------------------------------------------------------------------

    def webhook_deliveries(self, job_id: str, account_id: str | None) -> list[tuple[WebhookDelivery, list]]:
        """A job's deliveries, each with its attempts (oldest first)."""
        self.get_job(job_id, account_id)
        with self._sessions() as s:
            deliveries = list(s.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)))
            return [(d, list(s.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == d.delivery_id)
                                       .order_by(WebhookAttempt.attempt)))) for d in deliveries]


    def cancel_job(self, job_id: str, account_id: str | None) -> JobRecord:
        """Cancel a queued or running job; its credits are released now or, if Billing is away,
        by the settler. Of concurrent cancels one succeeds and the others get InvalidState."""
        if not _plain_id(job_id):
            raise JobNotFound(f"job {job_id[:40]!r} not found")
        try:
            with self._sessions.begin() as s:
                job = s.get(JobRecord, job_id, with_for_update=True)
                if job is None or (account_id and job.account_id != account_id):
                    raise JobNotFound(f"job {job_id} not found")
                if job.status in TERMINAL:
                    raise InvalidState(f"job {job_id} is already {job.status}")
                self._end(s, job, "cancelled", "cancelled", "cancelled by the client",
                          announce=events_pb2.EVENT_TYPE_CANCELLED)
        except IntegrityError as exc:  # another request ended it between our read and our write
            raise InvalidState(f"job {job_id} has already ended") from exc
        self._settle_now(job_id, "release")
        return self.get_job(job_id, None)

    def _end(self, s: Session, job: JobRecord, status: str, code: str = "", message: str = "",
             announce: int | None = None) -> None:
        """Move a job to an end state and record, in the same transaction, what it owes Billing
        and, for the ends this service decides (``announce``: CANCELLED, TIMED_OUT), its event."""
        self._finish(job, status, code, message)
        s.add(Settlement(job_id=job.job_id, kind=SETTLE[status]))
        s.flush()  # the one-end-per-job insert fails here, inside the caller's transaction
        if announce is not None:
            s.add(self._terminal_event(job, announce))

    @staticmethod
    def _terminal_event(job: JobRecord, type_) -> OutboxMessage:
        at = Timestamp()
        at.FromDatetime(_aware(job.finished_at) or utcnow())
        event = events_pb2.JobEvent(event_id=uuid.uuid4().hex, job_id=job.job_id, account_id=job.account_id,
                                    job_type=job.job_type, type=type_, progress=job.progress, stage=job.stage,
                                    error_code=job.error_code, error_message=job.error_message,
                                    attempt=job.attempts, worker_id="jobs", emitted_at=at)
        return _public(event, headers(job_event_type(type_), job.request_id))

    def _finish(self, job: JobRecord, status: str, code: str = "", message: str = "") -> None:
        now = utcnow()
        job.status, job.error_code, job.error_message = status, code, message
        job.finished_at = job.updated_at = now
        if status == "completed":
            job.progress = 1.0
        metrics.JOBS.labels(job.job_type, status).inc()
        created = _aware(job.created_at)
        if created:
            metrics.JOB_DURATION.labels(job.job_type, status).observe((now - created).total_seconds())

    # events --------------------------------------------------------------------------------------

    def apply_event(self, event: events_pb2.JobEvent,
                    record_headers: list[tuple[str, bytes]] | None = None) -> str:
        """Apply one worker report; returns what happened (for logs and tests).

        A report that changes the job is written to the outbox for ``audio.jobs.events`` in the
        same transaction, with ``record_headers`` (the report's Kafka headers; rebuilt from the
        job when absent). A report for an ended job, or of a type workers do not send, is not."""
        try:
            outcome, settle = self._apply(event, record_headers)
        except IntegrityError:  # the job ended concurrently (a cancel): now it reads as ended
            outcome, settle = self._apply(event, record_headers)
        if settle:
            self._settle_now(event.job_id, settle)
        return outcome

    def _apply(self, event: events_pb2.JobEvent, record_headers) -> tuple[str, str | None]:
        with self._sessions.begin() as s:
            job = s.get(JobRecord, event.job_id, with_for_update=True)
            if job is None:
                log.warning("event.unknown_job", job_id=event.job_id)
                return "unknown_job", None
            if job.status in TERMINAL:
                return "duplicate", None
            outcome, settle = self._change(s, job, event)
            if outcome != "ignored":
                s.add(_public(event, record_headers or headers(job_event_type(event.type), job.request_id)))
            return outcome, settle

    def _change(self, s: Session, job: JobRecord, event: events_pb2.JobEvent) -> tuple[str, str | None]:
        """Apply a report to a job that has not ended (the caller holds its row lock)."""
        if event.type == events_pb2.EVENT_TYPE_RUNNING:
            if job.status == "queued":
                job.started_at = utcnow()
            job.status, job.stage = "running", event.stage or "started"
            job.attempts = max(job.attempts, event.attempt)
            job.updated_at = utcnow()
            return "running", None
        if event.type == events_pb2.EVENT_TYPE_PROGRESS:
            job.status = "running"
            job.started_at = job.started_at or utcnow()
            job.progress = max(job.progress, min(max(event.progress, 0.0), 1.0))
            job.stage = event.stage or job.stage
            job.updated_at = utcnow()
            return "progress", None
        if event.type == events_pb2.EVENT_TYPE_COMPLETED:
            job.results = [{"name": r.name, "storage_key": r.storage_key, "content_type": r.content_type,
                            "size_bytes": r.size_bytes} for r in event.results]
            job.started_at = job.started_at or utcnow()
            job.stage = "done"
            self._end(s, job, "completed")
            return "completed", "confirm"
        if event.type == events_pb2.EVENT_TYPE_FAILED:
            self._end(s, job, "failed", event.error_code or "internal_error",
                      event.error_message or "processing failed")
            return "failed", "release"
        return "ignored", None  # CANCELLED, TIMED_OUT: decided here, never taken from a report

    def sweep(self, stale_running_s: float, stale_queued_s: float) -> int:
        """Fail jobs that stopped reporting, and release their credits. Returns how many.

        Each job ends in its own transaction, re-read under lock, so an event that arrives
        meanwhile wins and a job swept twice (two replicas) ends once."""
        now = utcnow()
        swept = []
        for status, limit in (("running", stale_running_s), ("queued", stale_queued_s)):
            cutoff = now - dt.timedelta(seconds=limit)
            with self._sessions() as s:
                stale = list(s.scalars(select(JobRecord.job_id).where(JobRecord.status == status,
                                                                      JobRecord.updated_at < cutoff).limit(500)))
            for job_id in stale:
                try:
                    with self._sessions.begin() as s:
                        job = s.get(JobRecord, job_id, with_for_update=True)
                        if job is None or job.status != status or _aware(job.updated_at) >= cutoff:
                            continue
                        self._end(s, job, "failed", "timeout",
                                  f"the job made no progress for {int(limit)} s and was stopped",
                                  announce=events_pb2.EVENT_TYPE_TIMED_OUT)
                except IntegrityError:
                    continue
                swept.append(job_id)
                log.warning("job.swept", job_id=job_id, was=status)
        for job_id in swept:
            self._settle_now(job_id, "release")
        return len(swept)

    def prune_outbox(self, older_than_s: float) -> int:
        """Delete outbox rows sent more than ``older_than_s`` ago (relayed progress fills it)."""
        return delete_sent(self._sessions, OutboxMessage, older_than_s)

    # credits -------------------------------------------------------------------------------------

    def _settle_now(self, job_id: str, how: str) -> None:
        """Settle right after the commit; if Billing is away the settler retries it later."""
        try:
            self._settle(job_id, how)
        except Unavailable as exc:
            log.warning("credits.settle_deferred", job_id=job_id, how=how, reason=exc.message)
            return
        self._mark_settled(job_id)

    def _mark_settled(self, job_id: str) -> None:
        with self._sessions.begin() as s:
            s.execute(update(Settlement).where(Settlement.job_id == job_id, Settlement.settled_at.is_(None))
                      .values(settled_at=utcnow()))

    def settle_pending(self, limit: int = 100) -> int:
        """Settle what ended jobs still owe Billing (it was away when they ended). Returns how
        many were settled; stops at the first Billing failure and leaves the rest for next time."""
        with self._sessions() as s:
            pending = list(s.execute(select(Settlement.job_id, Settlement.kind)
                                     .where(Settlement.settled_at.is_(None))
                                     .order_by(Settlement.created_at).limit(limit)))
        metrics.SETTLEMENTS_PENDING.set(len(pending))
        done = 0
        for job_id, kind in pending:
            try:
                self._settle(job_id, kind)
            except Unavailable:
                with self._sessions.begin() as s:
                    s.execute(update(Settlement).where(Settlement.job_id == job_id)
                              .values(attempts=Settlement.attempts + 1))
                break
            self._mark_settled(job_id)
            log.info("credits.settled_late", job_id=job_id, how=kind)
            done += 1
        return done

    def release_orphans(self, older_than_s: float = 300.0) -> int:
        """Release reservations whose job row was never written (the service died between
        Reserve and the insert). Returns how many."""
        open_ids = self._billing.open_reservations(older_than_s)
        released = 0
        with self._sessions() as s:
            orphans = [job_id for job_id in open_ids if s.get(JobRecord, job_id) is None]
        for job_id in orphans:
            self._settle(job_id, "release")
            log.warning("credits.orphan_released", job_id=job_id)
            released += 1
        return released
