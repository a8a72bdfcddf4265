"""The job-creating endpoints: separate, enhance, diarize.

Each validates its body against the parameter model of services.common.params (the names,
defaults and ranges of the API contract), then asks the jobs service to create the job, which
reserves 1 credit per second of audio (rounded up) and queues it.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter

from services.common.params import DiarizeParams, EnhanceParams, SeparateParams
from services.common.pb.timbr.v1 import jobs_pb2
from services.gateway.deps import Caller, Clients, ClientsDep, CurrentAccount
from services.gateway.schemas import JobCreated

router = APIRouter(prefix="/v1/audio", tags=["Audio"])
_STATUS = {jobs_pb2.JOB_STATUS_QUEUED: "queued", jobs_pb2.JOB_STATUS_RUNNING: "running",
           jobs_pb2.JOB_STATUS_COMPLETED: "completed", jobs_pb2.JOB_STATUS_FAILED: "failed",
           jobs_pb2.JOB_STATUS_CANCELLED: "cancelled"}
_RESPONSES = {
    401: {"description": "Missing or invalid token (`unauthorized`)"},
    402: {"description": "Not enough credits (`insufficient_credits`, with `required` and `available`)"},
    404: {"description": "The file does not exist or belongs to another account (`file_not_found`)"},
    422: {"description": "A parameter is out of range or of the wrong type (`validation_error`)"},
}
_WORKFLOW = ("\n\nWorkflow: upload with `POST /v1/upload`, call this endpoint with the `file_id`, poll "
             "`GET /v1/jobs/{job_id}`, download the results from their signed URLs. Cost: 1 credit per second "
             "of audio (rounded up), reserved now, charged on completion, released on failure or cancel.")


def create(clients: Clients, caller: Caller, job_type: str, params, inputs: dict[str, str]) -> JobCreated:
    job = clients.jobs.CreateJob(
        jobs_pb2.CreateJobRequest(account_id=caller.account_id, job_type=job_type,
                                  params_json=params.model_dump_json(), input_file_ids=inputs,
                                  request_id=caller.request_id),
        timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata)
    return JobCreated(job_id=job.job_id, job_type=job.job_type, status=_STATUS[job.status],
                      credits_reserved=job.credits_reserved, file_id=job.file_id,
                      created_at=job.created_at.ToDatetime(tzinfo=dt.UTC))


@router.post("/separate", response_model=JobCreated, responses=_RESPONSES, summary="Separate audio into stems",
             description="Split into stems: `dialogue-me` (speech, me), `dialogue-music-effect` (speech, music, "
             "effect), `speech-nonlingual` (speech: where words are spoken; nonlingual: everything else, "
             "including laughs, breaths, hums and wordless shouts). Stems sum back to the input." + _WORKFLOW)
def separate(body: SeparateParams, caller: CurrentAccount, clients: ClientsDep) -> JobCreated:
    return create(clients, caller, "separate", body, {"file": body.file_id})


@router.post("/enhance", response_model=JobCreated, responses=_RESPONSES, summary="Enhance audio quality",
             description="Denoise (DeepFilterNet3, `noise_reduction` = strength), EQ preset, optional compression "
             "and loudness normalisation to `target_lufs` (ITU-R BS.1770) with a -1 dBTP true-peak ceiling."
             + _WORKFLOW)
def enhance(body: EnhanceParams, caller: CurrentAccount, clients: ClientsDep) -> JobCreated:
    return create(clients, caller, "enhance", body, {"file": body.file_id})


@router.post("/diarize", response_model=JobCreated, responses=_RESPONSES,
             summary="Diarize audio with speaker identification",
             description="VAD -> Whisper transcription -> speaker embeddings -> clustering -> SRT with speaker "
             "labels (`timbr` and `sentence_split` SRT, plus JSON). With `input_srt_file_id` (an uploaded .srt), "
             "its cues are labelled with speakers instead of transcribing." + _WORKFLOW)
def diarize(body: DiarizeParams, caller: CurrentAccount, clients: ClientsDep) -> JobCreated:
    inputs = {"file": body.file_id}
    if body.input_srt_file_id:
        inputs["input_srt"] = body.input_srt_file_id
    return create(clients, caller, "diarize", body, inputs)
