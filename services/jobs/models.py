"""Jobs tables: uploaded files, jobs, the transactional outbox, the credits each ended job owes,
idempotency keys, account settings (webhook, retention) and webhook deliveries."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import utcnow


class Base(DeclarativeBase):
    pass


class FileRecord(Base):
    __tablename__ = "files"
    file_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), index=True)
    storage_key: Mapped[str] = mapped_column(String(500))
    filename: Mapped[str] = mapped_column(String(300), default="")
    kind: Mapped[str] = mapped_column(String(16), default="audio")  # audio | subtitle
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    sample_rate: Mapped[int] = mapped_column(Integer, default=0)
    channels: Mapped[int] = mapped_column(Integer, default=0)
    codec: Mapped[str] = mapped_column(String(40), default="")
    container: Mapped[str] = mapped_column(String(40), default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set when the object was removed from storage; the record stays so the API can answer 410.
    removed: Mapped[str] = mapped_column(String(16), default="")  # "" | deleted | expired
    removed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobRecord(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_updated", "status", "updated_at"),
                      Index("ix_jobs_account_created", "account_id", "created_at"))
    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40))
    job_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(60), default="")
    params: Mapped[dict] = mapped_column(JSON)
    inputs: Mapped[dict] = mapped_column(JSON)  # name -> {file_id, storage_key, kind}
    file_id: Mapped[str] = mapped_column(String(40))
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    credits_reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    error_code: Mapped[str] = mapped_column(String(60), default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    results: Mapped[list] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[str] = mapped_column(String(64), default="")
    webhook_url: Mapped[str] = mapped_column(String(2000), default="")
    results_removed: Mapped[str] = mapped_column(String(16), default="")  # "" | deleted | expired
    results_removed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxMessage(Base):
    """Written in the same transaction as the job; published to Kafka by ``OutboxPublisher``."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[bytes] = mapped_column()
    # [[name, value], ...]: the record's Kafka headers (services.common.kafka.headers)
    headers: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Settlement(Base):
    """What an ended job owes Billing (confirm or release), written in the transaction that ends it.

    One row a job (the primary key), so a job ends once: a second end (two concurrent cancels,
    a cancel racing a completion) fails on the insert and is refused. ``settled_at`` is set once
    Billing has answered; until then ``JobsService.settle_pending`` retries it.
    """

    __tablename__ = "settlements"
    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # confirm | release
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class IdempotencyKey(Base):
    """One row per (account, Idempotency-Key): what the first request asked for and what it made.

    ``resource_id`` is chosen when the key is claimed (a job id or a file id), so concurrent
    requests with one key agree on the job before any credit is reserved. Kept 24 h.
    """

    __tablename__ = "idempotency_keys"
    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(40))  # upload | separate | enhance | diarize
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the request
    resource_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class AccountSettings(Base):
    """Per-account options kept by the jobs service: default webhook, its secret, retention."""

    __tablename__ = "account_settings"
    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_url: Mapped[str] = mapped_column(String(2000), default="")
    webhook_secret: Mapped[str] = mapped_column(String(80))
    retention_days: Mapped[int] = mapped_column(Integer, default=0)  # 0: the service default
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDelivery(Base):
    """One delivery per ended job (its ``delivery_id`` is the stable Timbr-Delivery-Id).

    Written by the webhook dispatcher when it reads the job's terminal event; sent and retried
    by it until delivered, refused (4xx other than 429) or 24 h old.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_due", "status", "next_attempt_at"),)
    delivery_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(40), unique=True)
    account_id: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(40), default="")  # job.completed | job.failed | job.cancelled
    url: Mapped[str] = mapped_column(String(2000), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.delivery_id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    http_status: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(String(500), default="")
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(16))  # delivered | retry | failed
