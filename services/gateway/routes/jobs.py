"""Jobs: status, progress, errors and, once completed, results as signed URLs."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from services.common.pb.timbr.v1 import billing_pb2, jobs_pb2
from services.gateway.deps import Clients, ClientsDep, CurrentAccount, check_webhook_url
from services.gateway.jobdoc import job_document, pb_time
from services.gateway.schemas import (
    AccountOut,
    JobList,
    JobOut,
    WebhookAttemptOut,
    WebhookConfigOut,
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookIn,
)

router = APIRouter(tags=["Jobs"])


def job_out(job: jobs_pb2.Job, clients: Clients, partial: bool = False) -> JobOut:
    return job_document(job, clients.storage, clients.settings, partial)


@router.get("/v1/jobs/{job_id}", response_model=JobOut, summary="Get a job's status and results",
            responses={404: {"description": "No such job for this account (`job_not_found`)"},
                       503: {"description": "Result URLs cannot be signed now (`storage_unavailable`); retry"}})
def get_job(job_id: str, caller: CurrentAccount, clients: ClientsDep) -> JobOut:
    job = clients.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id, account_id=caller.account_id),
                              timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata)
    return job_out(job, clients)


@router.get("/v1/jobs", response_model=JobList, summary="List recent jobs")
def list_jobs(caller: CurrentAccount, clients: ClientsDep, limit: int = Query(50, ge=1, le=500)) -> JobList:
    resp = clients.jobs.ListJobs(jobs_pb2.ListJobsRequest(account_id=caller.account_id, limit=limit),
                                 timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata)
    return JobList(jobs=[job_out(j, clients, partial=True) for j in resp.jobs])


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


@router.delete("/v1/jobs/{job_id}", status_code=204, response_class=Response,
               summary="Delete a job's results from storage",
               description="Removes the result files; the job record stays (it is what you were billed for), and "
               "`GET /v1/jobs/{job_id}` then shows `results_removed: deleted`. Idempotent.",
               responses={404: {"description": "No such job for this account (`job_not_found`)"},
                          409: {"description": "The job has not ended yet; cancel it first (`invalid_state`)"}})
def delete_job(job_id: str, caller: CurrentAccount, clients: ClientsDep) -> Response:
    clients.jobs.DeleteJobResults(jobs_pb2.DeleteJobResultsRequest(job_id=job_id, account_id=caller.account_id),
                                  timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata)
    return Response(status_code=204)


@router.get("/v1/jobs/{job_id}/webhooks", response_model=WebhookDeliveryList, tags=["Webhooks"],
            summary="The job's webhook deliveries, with every attempt",
            responses={404: {"description": "No such job for this account (`job_not_found`)"}})
def job_webhooks(job_id: str, caller: CurrentAccount, clients: ClientsDep) -> WebhookDeliveryList:
    resp = clients.jobs.ListWebhookDeliveries(
        jobs_pb2.ListWebhookDeliveriesRequest(job_id=job_id, account_id=caller.account_id),
        timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata)
    return WebhookDeliveryList(deliveries=[WebhookDeliveryOut(
        delivery_id=d.delivery_id, event=d.event, url=d.url, status=d.status,
        next_attempt_at=pb_time(d.next_attempt_at), created_at=pb_time(d.created_at),
        attempts=[WebhookAttemptOut(attempt=a.attempt, at=pb_time(a.at), status_code=a.http_status or None,
                                    error=a.error or None, duration_ms=round(a.duration_ms, 1), outcome=a.outcome)
                  for a in d.attempts]) for d in resp.deliveries])


def _webhook_config(settings: jobs_pb2.AccountSettings) -> WebhookConfigOut:
    return WebhookConfigOut(url=settings.webhook_url or None, secret=settings.webhook_secret)


@router.get("/v1/account/webhook", response_model=WebhookConfigOut, tags=["Webhooks"],
            summary="Your default webhook URL and the secret that signs deliveries")
def get_webhook(caller: CurrentAccount, clients: ClientsDep) -> WebhookConfigOut:
    return _webhook_config(clients.jobs.GetAccountSettings(
        jobs_pb2.GetAccountSettingsRequest(account_id=caller.account_id),
        timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata))


@router.put("/v1/account/webhook", response_model=WebhookConfigOut, tags=["Webhooks"],
            summary="Set (or remove, with null) the default webhook URL",
            description="Jobs created without `webhook_url` call this URL when they end. The body of each call is "
            "the job document as `GET /v1/jobs/{job_id}` returns it, signed: `Timbr-Signature: t=<unix>,v1=<hex "
            "HMAC-SHA256 of \"<t>.<body>\" keyed with the secret>`. `rotate_secret` makes a new secret.",
            responses={422: {"description": "The URL is refused (`invalid_webhook_url`)"}})
def put_webhook(body: WebhookIn, caller: CurrentAccount, clients: ClientsDep) -> WebhookConfigOut:
    url = check_webhook_url(body.url, clients.settings)
    return _webhook_config(clients.jobs.SetAccountWebhook(
        jobs_pb2.SetAccountWebhookRequest(account_id=caller.account_id, webhook_url=url,
                                          rotate_secret=body.rotate_secret),
        timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata))
