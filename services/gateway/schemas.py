"""Response bodies of the public API (request bodies are services.common.params)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

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
    url: str = Field(description="Signed download URL, valid until expires_at")
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


class JobList(BaseModel):
    jobs: list[JobOut]


class AccountOut(BaseModel):
    account_id: str
    name: str
    available_credits: int
    reserved_credits: int
    spent_credits: int
