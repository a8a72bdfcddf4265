"""The job document: what ``GET /v1/jobs/{id}`` answers and what a webhook delivers.

One renderer for both, so a webhook body is exactly the job as the API shows it, with result
URLs signed afresh each time it is rendered.
"""

from __future__ import annotations

import datetime as dt
import json

from services.common.pb.timbr.v1 import jobs_pb2
from services.common.settings import CommonSettings
from services.common.storage import Storage
from services.gateway import viewer_links
from services.gateway.schemas import ErrorOut, JobOut, ResultOut

STATUS = {jobs_pb2.JOB_STATUS_QUEUED: "queued", jobs_pb2.JOB_STATUS_RUNNING: "running",
          jobs_pb2.JOB_STATUS_COMPLETED: "completed", jobs_pb2.JOB_STATUS_FAILED: "failed",
          jobs_pb2.JOB_STATUS_CANCELLED: "cancelled"}


def pb_time(ts) -> dt.datetime | None:
    return ts.ToDatetime(tzinfo=dt.UTC) if ts.seconds or ts.nanos else None


def job_document(job: jobs_pb2.Job, storage: Storage, settings: CommonSettings) -> JobOut:
    status = STATUS[job.status]
    results = []
    if status == "completed" and not job.results_removed:
        ttl = settings.signed_url_ttl_s
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
        results = [ResultOut(name=r.name, url=storage.signed_url(r.storage_key, ttl, r.name),
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
