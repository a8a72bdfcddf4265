"""The job document: what ``GET /v1/jobs/{id}`` answers and what a webhook delivers.

One renderer for both, so a webhook body is exactly the job as the API shows it, with result
URLs signed afresh each time it is rendered.
"""

from __future__ import annotations

import datetime as dt
import json

from services.common.logging import get_logger
from services.common.pb.timbr.v1 import jobs_pb2
from services.common.settings import CommonSettings
from services.common.storage import Storage, StorageUnavailable
from services.gateway import viewer_links
from services.gateway.schemas import ErrorOut, JobOut, ResultOut

log = get_logger(__name__)
STATUS = {jobs_pb2.JOB_STATUS_QUEUED: "queued", jobs_pb2.JOB_STATUS_RUNNING: "running",
          jobs_pb2.JOB_STATUS_COMPLETED: "completed", jobs_pb2.JOB_STATUS_FAILED: "failed",
          jobs_pb2.JOB_STATUS_CANCELLED: "cancelled"}


def pb_time(ts) -> dt.datetime | None:
    return ts.ToDatetime(tzinfo=dt.UTC) if ts.seconds or ts.nanos else None


def _sign(storage: Storage, key: str, ttl: int, name: str, partial: bool) -> str | None:
    try:
        return storage.signed_url(key, ttl, name)
    except StorageUnavailable as exc:
        if not partial:
            raise
        log.warning("storage.sign_failed", key=key, error=str(exc))
        return None


def job_document(job: jobs_pb2.Job, storage: Storage, settings: CommonSettings, partial: bool = False) -> JobOut:
    """``partial``: a result URL that cannot be signed now is null (a list still lists) instead of
    ``StorageUnavailable`` (503 ``storage_unavailable``)."""
    status = STATUS[job.status]
    results = []
    if status == "completed" and not job.results_removed:
        ttl = settings.signed_url_ttl_s
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
        results = [ResultOut(name=r.name, url=_sign(storage, r.storage_key, ttl, r.name, partial),
                             content_type=r.content_type, size_bytes=r.size_bytes, expires_at=expires)
                   for r in job.results]
    error = ErrorOut(code=job.error_code, message=job.error_message) if job.error_code else None
    return JobOut(job_id=job.job_id, job_type=job.job_type, status=status, progress=round(job.progress, 4),
                  stage=job.stage, file_id=job.file_id, params=json.loads(job.params_json or "{}"),
                  credits_reserved=job.credits_reserved,
                  credits_charged=job.credits_reserved if status == "completed" else 0,
                  attempts=job.attempts, error=error, results=results,
                  viewer_url=viewer_links.viewer_url(settings.public_url, settings.signing_secret, job.job_id,
                                                     job.account_id, settings.viewer_url_ttl_s),
                  created_at=pb_time(job.created_at),
                  started_at=pb_time(job.started_at), finished_at=pb_time(job.finished_at),
                  webhook_url=job.webhook_url or None, results_expire_at=pb_time(job.results_expire_at),
                  results_removed=job.results_removed or None)
