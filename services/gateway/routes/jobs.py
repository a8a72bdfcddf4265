"""Jobs: status, progress, errors and, once completed, results as signed URLs."""

from __future__ import annotations

import datetime as dt
import json

from fastapi import APIRouter, Query

from services.common.pb.timbr.v1 import billing_pb2, jobs_pb2
from services.gateway import viewer_links
from services.gateway.deps import Clients, ClientsDep, CurrentAccount
from services.gateway.routes.audio import _STATUS
from services.gateway.schemas import AccountOut, ErrorOut, JobList, JobOut, ResultOut

router = APIRouter(tags=["Jobs"])


def _time(ts) -> dt.datetime | None:
    return ts.ToDatetime(tzinfo=dt.UTC) if ts.seconds or ts.nanos else None


def job_out(job: jobs_pb2.Job, clients: Clients) -> JobOut:
    status = _STATUS[job.status]
    results = []
    if status == "completed":
        ttl = clients.settings.signed_url_ttl_s
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
        results = [ResultOut(name=r.name, url=clients.storage.signed_url(r.storage_key, ttl, r.name),
                             content_type=r.content_type, size_bytes=r.size_bytes, expires_at=expires)
                   for r in job.results]
    error = ErrorOut(code=job.error_code, message=job.error_message) if job.error_code else None
    return JobOut(job_id=job.job_id, job_type=job.job_type, status=status, progress=round(job.progress, 4),
                  stage=job.stage, file_id=job.file_id, params=json.loads(job.params_json or "{}"),
                  credits_reserved=job.credits_reserved,
                  credits_charged=job.credits_reserved if status == "completed" else 0,
                  attempts=job.attempts, error=error, results=results,
                  viewer_url=viewer_links.viewer_url(clients.settings.public_url, clients.settings.signing_secret,
                                                     job.job_id, job.account_id, clients.settings.viewer_url_ttl_s),
                  created_at=_time(job.created_at),
                  started_at=_time(job.started_at), finished_at=_time(job.finished_at))


@router.get("/v1/jobs/{job_id}", response_model=JobOut, summary="Get a job's status and results",
            responses={404: {"description": "No such job for this account (`job_not_found`)"}})
def get_job(job_id: str, caller: CurrentAccount, clients: ClientsDep) -> JobOut:
    job = clients.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id, account_id=caller.account_id),
                              timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata)
    return job_out(job, clients)


@router.get("/v1/jobs", response_model=JobList, summary="List recent jobs")
def list_jobs(caller: CurrentAccount, clients: ClientsDep, limit: int = Query(50, ge=1, le=500)) -> JobList:
    resp = clients.jobs.ListJobs(jobs_pb2.ListJobsRequest(account_id=caller.account_id, limit=limit),
                                 timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata)
    return JobList(jobs=[job_out(j, clients) for j in resp.jobs])


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobOut, summary="Cancel a queued or running job",
             responses={409: {"description": "The job has already ended (`invalid_state`)"}})
def cancel_job(job_id: str, caller: CurrentAccount, clients: ClientsDep) -> JobOut:
    job = clients.jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id, account_id=caller.account_id),
                                 timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata)
    return job_out(job, clients)


@router.get("/v1/account", response_model=AccountOut, tags=["Account"], summary="Your account and credits")
def account(caller: CurrentAccount, clients: ClientsDep) -> AccountOut:
    b = clients.billing.GetBalance(billing_pb2.GetBalanceRequest(account_id=caller.account_id),
                                   timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata)
    return AccountOut(account_id=caller.account_id, name=caller.name, available_credits=b.available,
                      reserved_credits=b.reserved, spent_credits=b.spent)
