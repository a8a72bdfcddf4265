"""Response bodies of the public API (request bodies are services.common.params)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]


class FileOut(BaseModel):
    file_id: str
    filename: str
    kind: Literal["audio", "subtitle"]
    duration: float = Field(description="Duration in seconds (0 for subtitles)")
    sample_rate: int
    channels: int
    format: str = Field(description="Container format, e.g. wav, mp3, flac")
    codec: str
    size_bytes: int
    created_at: dt.datetime | None = None
    expires_at: dt.datetime | None = Field(None, description="When the retention sweeper removes the file")
    removed: Literal["deleted", "expired"] | None = Field(
        None, description="Set once the file was removed from storage (deleted on request, or expired)")


class JobCreated(BaseModel):
    job_id: str
    job_type: str
    status: JobStatus
    credits_reserved: int
    file_id: str
    created_at: dt.datetime | None = None


class ErrorOut(BaseModel):
    code: str
    message: str


class ResultOut(BaseModel):
    name: str
    url: str | None = Field(description="Signed download URL, valid until expires_at; null in a job list "
                                        "when storage could not sign it (the job itself answers 503 "
                                        "`storage_unavailable` then)")
    content_type: str
    size_bytes: int
    expires_at: dt.datetime


class JobOut(BaseModel):
    job_id: str
    job_type: str
    status: JobStatus
    progress: float = Field(ge=0, le=1)
    stage: str
    file_id: str
    params: dict[str, Any]
    credits_reserved: int
    credits_charged: int = Field(description="Credits confirmed: credits_reserved once completed, else 0")
    attempts: int
    error: ErrorOut | None = None
    results: list[ResultOut] = []
    viewer_url: str | None = Field(None, description="Signed link to the job's results page (no token needed)")
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    webhook_url: str | None = Field(None, description="Called when the job ends (else the account's default)")
    results_expire_at: dt.datetime | None = Field(None, description="When the results are removed from storage")
    results_removed: Literal["deleted", "expired"] | None = Field(
        None, description="Set once the results were removed (the job record stays)")


class JobList(BaseModel):
    jobs: list[JobOut]


class AccountOut(BaseModel):
    account_id: str
    name: str
    available_credits: int
    reserved_credits: int
    spent_credits: int


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, max_length=2000,
                            description="Default webhook for jobs created without `webhook_url`; null removes it")
    rotate_secret: bool = Field(False, description="Make a new signing secret (the old one stops at once)")


class WebhookConfigOut(BaseModel):
    url: str | None
    secret: str = Field(description="Signs every delivery: Timbr-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "
                        "'t.body'> with this secret as the key")


class WebhookAttemptOut(BaseModel):
    attempt: int
    at: dt.datetime | None
    status_code: int | None = Field(description="The receiver's HTTP status; null when no response came")
    error: str | None
    duration_ms: float
    outcome: Literal["delivered", "retry", "failed"]


class WebhookDeliveryOut(BaseModel):
    delivery_id: str = Field(description="Timbr-Delivery-Id: the same on every attempt of this delivery")
    event: str
    url: str
    status: Literal["pending", "delivered", "failed"]
    next_attempt_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    attempts: list[WebhookAttemptOut]


class WebhookDeliveryList(BaseModel):
    deliveries: list[WebhookDeliveryOut]
