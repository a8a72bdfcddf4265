"""The job-creating endpoints: separate, enhance, diarize.

Each validates its body against the parameter model of services.common.params (the names,
defaults and ranges of the API contract), then asks the jobs service to create the job, which
reserves 1 credit per second of audio (rounded up) and queues it.
"""

from __future__ import annotations

import datetime as dt
import json

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from services.common.params import DiarizeParams, EnhanceParams, SeparateParams
from services.common.pb.timbr.v1 import jobs_pb2
from services.gateway.deps import (
    REPLAYED_HEADER,
    Caller,
    Clients,
    ClientsDep,
    CurrentAccount,
    IdempotencyKeyDep,
    check_webhook_url,
)
from services.gateway.jobdoc import STATUS as _STATUS  # noqa: F401 - imported from here by others
from services.gateway.schemas import JobCreated

router = APIRouter(prefix="/v1/audio", tags=["Audio"])
_RESPONSES = {
    401: {"description": "Missing or invalid token (`unauthorized`)"},
    402: {"description": "Not enough credits (`insufficient_credits`, with `required` and `available`)"},
    404: {"description": "The file does not exist or belongs to another account (`file_not_found`)"},
    409: {"description": "The Idempotency-Key was used with another body (`idempotency_conflict`), or a "
                         "request with it is still running (`idempotency_in_progress`)"},
    410: {"description": "The file was removed from storage (`deleted`, `expired`)"},
    422: {"description": "A parameter is out of range or of the wrong type (`validation_error`), or the "
                         "webhook URL is refused (`invalid_webhook_url`)"},
}


class _JobOptions(BaseModel):
    webhook_url: str | None = Field(
        None, max_length=2000, description="Called with the job document when the job ends (signed with your "
        "account's secret; see `GET /v1/account/webhook`). Default: the account's webhook, if any")


class SeparateRequest(SeparateParams, _JobOptions):
    pass


class EnhanceRequest(EnhanceParams, _JobOptions):
    pass


class DiarizeRequest(DiarizeParams, _JobOptions):
    pass
_WORKFLOW = ("\n\nWorkflow: upload with `POST /v1/upload`, call this endpoint with the `file_id`, poll "
             "`GET /v1/jobs/{job_id}`, download the results from their signed URLs. Cost: 1 credit per second "
             "of audio (rounded up), reserved now, charged on completion, released on failure or cancel.")


def create(clients: Clients, caller: Caller, job_type: str, body: _JobOptions, inputs: dict[str, str],
           key: str = "", response: Response | None = None) -> JobCreated:
    webhook_url = check_webhook_url(body.webhook_url, clients.settings)
    params = body.model_dump(mode="json", exclude={"webhook_url"})  # what the pipeline reads
    # A little longer than the jobs service waits for a concurrent request with the same key.
    timeout = clients.settings.grpc_timeout_s + (20 if key else 0)
    job = clients.jobs.CreateJob(
        jobs_pb2.CreateJobRequest(account_id=caller.account_id, job_type=job_type,
                                  params_json=json.dumps(params), input_file_ids=inputs,
                                  request_id=caller.request_id, idempotency_key=key, webhook_url=webhook_url),
        timeout=timeout, metadata=caller.metadata)
    if job.replayed and response is not None:
        response.headers[REPLAYED_HEADER] = "true"
    # The creation answer is the job as created ("queued"), the same on a replay.
    return JobCreated(job_id=job.job_id, job_type=job.job_type, status="queued",
                      credits_reserved=job.credits_reserved, file_id=job.file_id,
                      created_at=job.created_at.ToDatetime(tzinfo=dt.UTC))


@router.post("/separate", response_model=JobCreated, responses=_RESPONSES, summary="Separate audio into stems",
             description="Split into stems: `dialogue-me` (speech, me), `dialogue-music-effect` (speech, music, "
             "effect), `speech-nonlingual` (speech: where words are spoken; nonlingual: everything else, "
             "including laughs, breaths, hums and wordless shouts). Stems sum back to the input." + _WORKFLOW)
def separate(body: SeparateRequest, caller: CurrentAccount, clients: ClientsDep, key: IdempotencyKeyDep,
             response: Response) -> JobCreated:
    return create(clients, caller, "separate", body, {"file": body.file_id}, key, response)


@router.post("/enhance", response_model=JobCreated, responses=_RESPONSES, summary="Enhance audio quality",
             description="Denoise (DeepFilterNet3, `noise_reduction` = strength), EQ preset, optional compression "
             "and loudness normalisation to `target_lufs` (ITU-R BS.1770) with a -1 dBTP true-peak ceiling."
             + _WORKFLOW)
def enhance(body: EnhanceRequest, caller: CurrentAccount, clients: ClientsDep, key: IdempotencyKeyDep,
            response: Response) -> JobCreated:
    return create(clients, caller, "enhance", body, {"file": body.file_id}, key, response)


@router.post("/diarize", response_model=JobCreated, responses=_RESPONSES,
             summary="Diarize audio with speaker identification",
             description="VAD -> Whisper transcription -> speaker embeddings -> clustering -> SRT with speaker "
             "labels (`timbr` and `sentence_split` SRT, plus JSON). With `input_srt_file_id` (an uploaded .srt), "
             "its cues are labelled with speakers instead of transcribing." + _WORKFLOW)
def diarize(body: DiarizeRequest, caller: CurrentAccount, clients: ClientsDep, key: IdempotencyKeyDep,
            response: Response) -> JobCreated:
    inputs = {"file": body.file_id}
    if body.input_srt_file_id:
        inputs["input_srt"] = body.input_srt_file_id
    return create(clients, caller, "diarize", body, inputs, key, response)
