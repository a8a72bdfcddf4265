"""Jobs gRPC servicer: protobuf in and out, rules in ``JobsService``, errors mapped here."""

from __future__ import annotations

import json
from contextlib import contextmanager

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.grpc_util import abort
from services.common.pb.timbr.v1 import billing_pb2, events_pb2
from services.common.pb.timbr.v1 import jobs_pb2 as pb
from services.common.pb.timbr.v1 import jobs_pb2_grpc as pb_grpc
from services.jobs import errors
from services.jobs.models import FileRecord
from services.jobs.service import JobsService, _aware

_STATUS = {"queued": pb.JOB_STATUS_QUEUED, "running": pb.JOB_STATUS_RUNNING, "completed": pb.JOB_STATUS_COMPLETED,
           "failed": pb.JOB_STATUS_FAILED, "cancelled": pb.JOB_STATUS_CANCELLED}
_CODES = {
    errors.FileNotFound: grpc.StatusCode.NOT_FOUND,
    errors.JobNotFound: grpc.StatusCode.NOT_FOUND,
    errors.AccountNotFound: grpc.StatusCode.NOT_FOUND,
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InsufficientCredits: grpc.StatusCode.FAILED_PRECONDITION,
    errors.InvalidState: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Gone: grpc.StatusCode.FAILED_PRECONDITION,
    errors.FileInUse: grpc.StatusCode.FAILED_PRECONDITION,
    errors.IdempotencyConflict: grpc.StatusCode.FAILED_PRECONDITION,
    errors.IdempotencyInProgress: grpc.StatusCode.ABORTED,
}


def ts(value) -> Timestamp | None:
    if value is None:
        return None
    t = Timestamp()
    t.FromDatetime(_aware(value))
    return t


@contextmanager
def _mapped(context):
    try:
        yield
    except errors.JobsError as exc:
        detail = (billing_pb2.InsufficientCreditsDetail(needed=exc.required, available=exc.available)
                  if isinstance(exc, errors.InsufficientCredits) else None)
        abort(context, _CODES.get(type(exc), grpc.StatusCode.INTERNAL), exc.code, exc.message, detail, **exc.extra)


def file_to_pb(f: FileRecord) -> pb.File:
    return pb.File(file_id=f.file_id, account_id=f.account_id, storage_key=f.storage_key, filename=f.filename,
                   kind=f.kind, duration_s=f.duration_s, sample_rate=f.sample_rate, channels=f.channels,
                   codec=f.codec, container=f.container, size_bytes=f.size_bytes, created_at=ts(f.created_at),
                   expires_at=ts(getattr(f, "expires_at", None)), removed=f.removed or "",
                   replayed=getattr(f, "replayed", False))


def job_to_pb(j) -> pb.Job:
    return pb.Job(
        job_id=j.job_id, account_id=j.account_id, job_type=j.job_type, status=_STATUS[j.status],
        progress=j.progress, stage=j.stage, params_json=json.dumps(j.params), file_id=j.file_id,
        credits_reserved=j.credits_reserved, error_code=j.error_code, error_message=j.error_message,
        results=[events_pb2.ResultObject(**r) for r in j.results or []], attempts=j.attempts,
        created_at=ts(j.created_at), started_at=ts(j.started_at), finished_at=ts(j.finished_at),
        updated_at=ts(j.updated_at), webhook_url=j.webhook_url or "", replayed=getattr(j, "replayed", False),
        results_expire_at=ts(getattr(j, "results_expire_at", None)), results_removed=j.results_removed or "")


def settings_to_pb(row, store) -> pb.AccountSettings:
    return pb.AccountSettings(account_id=row.account_id, webhook_url=row.webhook_url,
                              webhook_secret=row.webhook_secret, retention_days=row.retention_days,
                              effective_retention_days=int(store.effective_days(row)))


def delivery_to_pb(d, attempts) -> pb.WebhookDelivery:
    return pb.WebhookDelivery(
        delivery_id=d.delivery_id, job_id=d.job_id, event=d.event, url=d.url, status=d.status,
        next_attempt_at=ts(d.next_attempt_at) if d.status == "pending" else None, created_at=ts(d.created_at),
        attempts=[pb.WebhookAttempt(attempt=a.attempt, at=ts(a.at), http_status=a.http_status, error=a.error,
                                    duration_ms=a.duration_ms, outcome=a.outcome) for a in attempts])


class JobsServicer(pb_grpc.JobsServicer):
    def __init__(self, service: JobsService) -> None:
        self.svc = service

    def RegisterFile(self, request, context):
        f = request.file
        with _mapped(context):
            if not f.file_id or not f.account_id or not f.storage_key:
                raise errors.InvalidRequest("a file needs file_id, account_id and storage_key")
            record = FileRecord(file_id=f.file_id, account_id=f.account_id, storage_key=f.storage_key,
                                filename=f.filename, kind=f.kind or "audio", duration_s=f.duration_s,
                                sample_rate=f.sample_rate, channels=f.channels, codec=f.codec,
                                container=f.container, size_bytes=f.size_bytes)
            return file_to_pb(self.svc.register_file(record, request.idempotency_key, request.fingerprint))

    def GetFile(self, request, context):
        with _mapped(context):
            return file_to_pb(self.svc.get_file(request.file_id, request.account_id or None))

    def CreateJob(self, request, context):
        with _mapped(context):
            try:
                params = json.loads(request.params_json or "{}")
            except json.JSONDecodeError as exc:
                raise errors.InvalidRequest(f"params_json is not JSON: {exc}") from exc
            job = self.svc.create_job(request.account_id, request.job_type, params,
                                      dict(request.input_file_ids), request.request_id,
                                      request.idempotency_key, request.webhook_url)
            return job_to_pb(job)

    def GetJob(self, request, context):
        with _mapped(context):
            return job_to_pb(self.svc.get_job(request.job_id, request.account_id or None))

    def ListJobs(self, request, context):
        with _mapped(context):
            return pb.ListJobsResponse(jobs=[job_to_pb(j) for j in self.svc.list_jobs(request.account_id,
                                                                                       request.limit or 50)])

    def CancelJob(self, request, context):
        with _mapped(context):
            return job_to_pb(self.svc.cancel_job(request.job_id, request.account_id or None))

    def DeleteFile(self, request, context):
        with _mapped(context):
            return file_to_pb(self.svc.delete_file(request.file_id, request.account_id or None))

    def DeleteJobResults(self, request, context):
        with _mapped(context):
            return job_to_pb(self.svc.delete_job_results(request.job_id, request.account_id or None))

    def GetAccountSettings(self, request, context):
        with _mapped(context):
            return settings_to_pb(self.svc.accounts.get(request.account_id), self.svc.accounts)

    def SetAccountWebhook(self, request, context):
        with _mapped(context):
            row = self.svc.accounts.set_webhook(request.account_id, request.webhook_url, request.rotate_secret)
            return settings_to_pb(row, self.svc.accounts)

    def SetAccountRetention(self, request, context):
        with _mapped(context):
            row = self.svc.accounts.set_retention(request.account_id, request.retention_days)
            return settings_to_pb(row, self.svc.accounts)

    def ListWebhookDeliveries(self, request, context):
        with _mapped(context):
            found = self.svc.webhook_deliveries(request.job_id, request.account_id or None)
            return pb.ListWebhookDeliveriesResponse(deliveries=[delivery_to_pb(d, a) for d, a in found])
