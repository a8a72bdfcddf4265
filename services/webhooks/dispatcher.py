"""The webhook dispatcher: its own consumer of ``audio.jobs.events``, delivering job ends.

Intake (at-least-once): each terminal event (completed, failed, cancelled, timed out) of a job
with a webhook (the job's ``webhook_url``, else the account's default) becomes one delivery row;
the offset is committed after the row is written, and the job id is unique among deliveries,
so a redelivered or duplicate event makes no second delivery.

Sender (at-least-once, stable ``Timbr-Delivery-Id``): due deliveries are leased (a short
transaction, so no lock is held over the network), sent with the job document as
``GET /v1/jobs/{id}`` renders it (fresh signed URLs) and signed with the account's secret,
and every attempt is recorded. 2xx: delivered. Timeouts, connection errors, 429 and 5xx:
retried with exponential backoff and jitter until 24 h after the job ended. Any other answer,
or a target that resolves to a refused address: failed, not retried. A lease that expires
(a dispatcher died mid-send) makes the delivery due again.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from services.common.kafka import make_consumer
from services.common.logging import bound_contextvars, get_logger
from services.common.netguard import TargetRefused, Unresolvable, resolve
from services.common.pb.timbr.v1 import events_pb2
from services.common.settings import TOPIC_EVENTS
from services.common.storage import Storage
from services.gateway.jobdoc import job_document
from services.jobs.background import Loop
from services.jobs.models import AccountSettings, JobRecord, WebhookAttempt, WebhookDelivery, utcnow
from services.jobs.server import job_to_pb
from services.jobs.service import TERMINAL, JobsService
from services.webhooks import metrics, signing
from services.webhooks.config import WebhookSettings

log = get_logger(__name__)
TERMINAL_EVENTS = frozenset({events_pb2.EVENT_TYPE_COMPLETED, events_pb2.EVENT_TYPE_FAILED,
                             events_pb2.EVENT_TYPE_CANCELLED, events_pb2.EVENT_TYPE_TIMED_OUT})
USER_AGENT = "Timbr-Webhooks/1.0"


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


def enqueue(sessions: sessionmaker, event: events_pb2.JobEvent, max_age_s: float = 86400.0) -> str:
    """Turn one event into a delivery when it ends a job that has a webhook. Idempotent.

    A job that ended more than ``max_age_s`` ago is past its retry window: a group reading the
    topic from its start (a new deployment, a reset) does not call receivers about old jobs."""
    if event.type not in TERMINAL_EVENTS:
        return "ignored"
    with sessions() as s:
        if s.scalar(select(WebhookDelivery.delivery_id).where(WebhookDelivery.job_id == event.job_id)):
            return "duplicate"
        job = s.get(JobRecord, event.job_id)
        if job is None:
            return "unknown_job"
        ended = _aware(job.finished_at)
        if ended is not None and ended < utcnow() - dt.timedelta(seconds=max_age_s):
            return "too_old"
        url = job.webhook_url
        if not url:
            account = s.get(AccountSettings, job.account_id)
            url = account.webhook_url if account is not None else ""
        if not url:
            return "no_webhook"
    try:
        with sessions.begin() as s:
            s.add(WebhookDelivery(delivery_id=f"whd_{uuid.uuid4().hex[:24]}", job_id=job.job_id,
                                  account_id=job.account_id, url=url, status="pending", next_attempt_at=utcnow()))
    except IntegrityError:
        return "duplicate"  # another dispatcher wrote it first
    metrics.DELIVERIES.labels(events_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_").lower()).inc()
    return "queued"


class Intake(Loop):
    """Reads ``audio.jobs.events`` in its own consumer group; commits after the row is written."""

    def __init__(self, sessions: sessionmaker, bootstrap: str, group: str, max_age_s: float = 86400.0) -> None:
        super().__init__("webhook-intake")
        self._sessions = sessions
        self._max_age_s = max_age_s
        self._kafka = bootstrap
        self._group = group
        self._consumer = None
        self.interval_s = 0.2

    def step(self) -> bool:
        if self._consumer is None:
            self._consumer = make_consumer(self._kafka, self._group, TOPIC_EVENTS, client_id="timbr-webhooks")
        consumer = self._consumer
        batch = consumer.poll(timeout_ms=500, max_records=50)
        for tp, records in batch.items():
            for record in records:
                event = events_pb2.JobEvent.FromString(record.value)
                try:
                    outcome = enqueue(self._sessions, event, self._max_age_s)
                except Exception:
                    consumer.seek(tp, record.offset)  # not recorded: read it again
                    raise
                consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
                if outcome == "queued":
                    log.info("webhook.queued", job_id=event.job_id)
            try:
                end = consumer.end_offsets([tp])[tp]
                metrics.LAG.set(max(0, end - (records[-1].offset + 1)))
            except KafkaError:
                pass
        return bool(batch)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with jitter: the n-th retry waits base * 2^(n-1), capped, of which
    the second half is random, so many receivers failing at once do not retry in step."""
    delay = min(max_s, base_s * 2 ** (attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def classify(status: int) -> str:
    if 200 <= status < 300:
        return "delivered"
    if status == 429 or status >= 500:
        return "retry"
    return "failed"  # other 4xx, and redirects (not followed: the new target is unchecked)


class Sender(Loop):
    def __init__(self, sessions: sessionmaker, storage: Storage, settings: WebhookSettings,
                 client: httpx.Client | None = None) -> None:
        super().__init__("webhook-sender")
        self._sessions = sessions
        self._storage = storage
        self._settings = settings
        self._jobs = JobsService(sessions, None, storage=storage, retention_days=settings.retention_days)
        self._client = client or httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False,
                                              headers={"User-Agent": USER_AGENT})
        self._pool = ThreadPoolExecutor(max_workers=settings.webhook_concurrency, thread_name_prefix="webhook")
        self.interval_s = settings.poll_s

    def step(self) -> bool:
        now = utcnow()
        lease = dt.timedelta(seconds=self._settings.webhook_timeout_s + 30)
        with self._sessions.begin() as s:
            due = list(s.scalars(
                select(WebhookDelivery).where(WebhookDelivery.status == "pending",
                                              WebhookDelivery.next_attempt_at <= now,
                                              or_(WebhookDelivery.locked_until.is_(None),
                                                  WebhookDelivery.locked_until < now))
                .order_by(WebhookDelivery.next_attempt_at).limit(self._settings.webhook_concurrency * 4)
                .with_for_update(skip_locked=True)))
            for d in due:
                d.locked_until = now + lease
            ids = [d.delivery_id for d in due]
            metrics.PENDING.set(s.scalar(select(func.count()).select_from(WebhookDelivery)
                                         .where(WebhookDelivery.status == "pending")) or 0)
        for outcome in self._pool.map(self._safe_deliver, ids):
            log.debug("webhook.step", outcome=outcome)
        return bool(ids)

    def _safe_deliver(self, delivery_id: str) -> str:
        try:
            return self.deliver(delivery_id)
        except Exception:
            log.exception("webhook.deliver_error", delivery_id=delivery_id)
            return "error"  # the lease expires and the delivery is tried again

    def deliver(self, delivery_id: str) -> str:
        with self._sessions() as s:
            d = s.get(WebhookDelivery, delivery_id)
        with bound_contextvars(job_id=d.job_id, account=d.account_id, delivery_id=delivery_id):
            job = self._jobs.get_job(d.job_id, None)
            if job.status not in TERMINAL:
                # The event reached us before the jobs service applied it: look again shortly.
                self._reschedule(delivery_id, utcnow() + dt.timedelta(seconds=1))
                return "waiting"
            secret = self._jobs.accounts.get(d.account_id).webhook_secret
            body = job_document(job_to_pb(job), self._storage, self._settings).model_dump_json().encode()
            event = f"job.{job.status}"
            attempt = d.attempts + 1
            started = time.perf_counter()
            status, error = 0, ""
            try:
                status = self._post(d.url, body, {
                    "Content-Type": "application/json", "Timbr-Delivery-Id": delivery_id, "Timbr-Event": event,
                    "Timbr-Attempt": str(attempt), signing.HEADER: signing.sign(secret, body)})
                outcome = classify(status)
            except Unresolvable as exc:
                outcome, error = "retry", f"name resolution: {exc}"
            except TargetRefused as exc:
                outcome, error = "failed", f"refused target: {exc}"
            except httpx.TimeoutException:
                outcome, error = "retry", f"timeout after {self._settings.webhook_timeout_s:g} s"
            except httpx.TransportError as exc:
                outcome, error = "retry", f"connection error: {type(exc).__name__}: {exc}"[:500]
            elapsed = time.perf_counter() - started
            finished = _aware(job.finished_at) or utcnow()
            next_at = utcnow() + dt.timedelta(seconds=backoff_s(attempt, self._settings.webhook_backoff_base_s,
                                                                self._settings.webhook_backoff_max_s))
            if outcome == "retry" and next_at > finished + dt.timedelta(seconds=self._settings.webhook_max_age_s):
                outcome = "failed"
                error = (error or f"HTTP {status}") + "; given up after 24 h"
            self._record(delivery_id, event, attempt, status, error, elapsed, outcome, next_at)
            metrics.ATTEMPTS.labels(outcome).inc()
            metrics.ATTEMPT_SECONDS.observe(elapsed)
            log.info("webhook.attempt", attempt=attempt, http_status=status, outcome=outcome, error=error,
                     ms=round(elapsed * 1000, 1))
            return outcome

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST to an address that passed the target check (not to a second DNS answer)."""
        address = resolve(url, self._settings.webhook_allow_private)[0]
        target = httpx.URL(url)
        pinned = target.copy_with(host=address)
        headers = {**headers, "Host": target.netloc.decode("ascii")}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        response = self._client.post(pinned, content=body, headers=headers, extensions=extensions)
        return response.status_code

    def _reschedule(self, delivery_id: str, when: dt.datetime) -> None:
        with self._sessions.begin() as s:
            d = s.get(WebhookDelivery, delivery_id, with_for_update=True)
            d.next_attempt_at, d.locked_until = when, None

    def _record(self, delivery_id: str, event: str, attempt: int, status: int, error: str, elapsed: float,
                outcome: str, next_at: dt.datetime) -> None:
        with self._sessions.begin() as s:
            d = s.get(WebhookDelivery, delivery_id, with_for_update=True)
            s.add(WebhookAttempt(delivery_id=delivery_id, attempt=attempt, at=utcnow(), http_status=status,
                                 error=error, duration_ms=elapsed * 1000, outcome=outcome))
            d.attempts, d.event, d.locked_until = attempt, event, None
            d.status = {"delivered": "delivered", "failed": "failed"}.get(outcome, "pending")
            if outcome == "retry":
                d.next_attempt_at = next_at

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()
