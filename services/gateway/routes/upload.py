"""POST /v1/upload (alias /v1/audio/upload): store a file, probe it, return its file_id.

The body is multipart/form-data with one ``file`` part. Nothing of it is read before the token
is checked and its Content-Length is within ``TIMBR_MAX_UPLOAD_BYTES`` (plus room for the
multipart framing); while it streams, the bytes are counted and the upload stops with 413 as
soon as they pass that bound, so a client without a token, or with too much, never fills the
disk. Starlette spools the part to a temporary file (1 MiB in memory at most), the file is
probed with PyAV and copied to storage in 1 MiB chunks: memory stays constant whatever the
size. SRT files (``.srt``) are accepted too, for diarize's ``input_srt_file_id``.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import PurePath

import srt
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from services.common.audio import InvalidAudio, probe
from services.common.pb.timbr.v1 import jobs_pb2
from services.gateway.deps import REPLAYED_HEADER, ClientsDep, CurrentAccount, IdempotencyKeyDep
from services.gateway.errors import ApiError
from services.gateway.jobdoc import pb_time
from services.gateway.metrics import UPLOAD_BYTES
from services.gateway.schemas import FileOut

router = APIRouter(tags=["Files"])
MAX_SRT_BYTES = 20 * 1024 * 1024
# Room for the multipart boundary and part headers around the file itself.
MULTIPART_SLACK = 64 * 1024
# The body is read by hand (after the token check), so its shape is declared for OpenAPI here.
_MULTIPART = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {"file": {
        "type": "string", "format": "binary",
        "description": "Audio file (any format FFmpeg decodes) or an .srt file"}}}}}}}


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"uploads are limited to {limit} bytes")


async def read_form(request: Request, limit: int) -> FormData:
    """The multipart form, refused with 413 before or while reading once it passes ``limit``."""
    bound = limit + MULTIPART_SLACK
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > bound:
        raise _too_large(limit)
    received = 0

    async def counted():
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > bound:
                raise _too_large(limit)
        return message

    return await Request(request.scope, counted).form(max_files=2, max_fields=10)


def _safe_name(name: str | None) -> str:
    base = PurePath(name or "upload").name
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "upload"
    return base[:120]


def _size(upload: UploadFile) -> int:
    upload.file.seek(0, 2)
    size = upload.file.tell()
    upload.file.seek(0)
    return size


def _check_srt(upload: UploadFile, size: int) -> None:
    if size > MAX_SRT_BYTES:
        raise ApiError(413, "payload_too_large", f"subtitle files are limited to {MAX_SRT_BYTES} bytes")
    try:
        text = upload.file.read().decode("utf-8-sig")
        cues = list(srt.parse(text))
    except (UnicodeDecodeError, srt.SRTParseError, ValueError) as exc:
        raise ApiError(422, "invalid_srt", f"the file is not a valid UTF-8 SRT file: {exc}") from exc
    finally:
        upload.file.seek(0)
    if not cues:
        raise ApiError(422, "invalid_srt", "the SRT file holds no cues")
    for cue in cues:
        if cue.end <= cue.start:
            raise ApiError(422, "invalid_srt", f"cue {cue.index} ends before it starts")


@router.post("/v1/upload", response_model=FileOut, summary="Upload an audio file", openapi_extra=_MULTIPART,
             responses={413: {"description": "Over `TIMBR_MAX_UPLOAD_BYTES` (`payload_too_large`)"},
                        409: {"description": "The Idempotency-Key was used with another file (`idempotency_conflict`)"}})
@router.post("/v1/audio/upload", response_model=FileOut, include_in_schema=False)
async def upload(caller: CurrentAccount, clients: ClientsDep, key: IdempotencyKeyDep, response: Response,
                 request: Request):
    # No body parameter: FastAPI resolves the token (CurrentAccount) before anything is read.
    form = await read_form(request, clients.settings.max_upload_bytes)
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise ApiError(422, "validation_error", "file: a multipart part named 'file' is required",
                           details=[{"field": "file", "message": "Field required"}])
        return await run_in_threadpool(_store, caller, clients, file, key, response)
    finally:
        await form.close()


def _store(caller, clients, file: UploadFile, key: str = "", response: Response | None = None) -> FileOut:
    settings = clients.settings
    size = _size(file)
    if size == 0:
        raise ApiError(422, "invalid_audio", "the uploaded file is empty")
    if size > settings.max_upload_bytes:
        raise ApiError(413, "payload_too_large", f"uploads are limited to {settings.max_upload_bytes} bytes")
    filename = _safe_name(file.filename)
    file_id = f"file_{uuid.uuid4().hex[:24]}"
    if filename.lower().endswith(".srt"):
        _check_srt(file, size)
        kind, info = "subtitle", None
        content_type = "application/x-subrip"
    else:
        try:
            info = probe(file.file)
        except InvalidAudio as exc:
            raise ApiError(422, "invalid_audio", str(exc)) from exc
        finally:
            file.file.seek(0)
        if info.duration_s > settings.max_duration_s:
            raise ApiError(422, "invalid_audio",
                           f"the audio lasts {info.duration_s:.0f} s; the limit is {settings.max_duration_s:.0f} s")
        kind, content_type = "audio", file.content_type or "application/octet-stream"
    storage_key = f"bronze/{caller.account_id}/{file_id}/{filename}"
    hashed = _Sha256Reader(file.file, filename)
    stored = clients.storage.put_stream(storage_key, hashed, content_type)
    UPLOAD_BYTES.inc(stored)
    record = jobs_pb2.File(
        file_id=file_id, account_id=caller.account_id, storage_key=storage_key, filename=filename, kind=kind,
        duration_s=info.duration_s if info else 0.0, sample_rate=info.sample_rate if info else 0,
        channels=info.channels if info else 0, codec=info.codec if info else "subrip",
        container=info.container if info else "srt", size_bytes=stored)
    try:
        saved = clients.jobs.RegisterFile(
            jobs_pb2.RegisterFileRequest(file=record, idempotency_key=key, fingerprint=hashed.hexdigest()),
            timeout=settings.grpc_timeout_s + (20 if key else 0), metadata=caller.metadata)
    except Exception:
        clients.storage.delete(storage_key)  # refused (idempotency_conflict): keep no orphan object
        raise
    if saved.replayed:  # the first upload with this key is the answer; this copy is not needed
        clients.storage.delete(storage_key)
        if response is not None:
            response.headers[REPLAYED_HEADER] = "true"
    return file_out(saved)


def file_out(f: jobs_pb2.File) -> FileOut:
    return FileOut(file_id=f.file_id, filename=f.filename, kind=f.kind, duration=round(f.duration_s, 6),
                   sample_rate=f.sample_rate, channels=f.channels, format=f.container, codec=f.codec,
                   size_bytes=f.size_bytes, created_at=pb_time(f.created_at), expires_at=pb_time(f.expires_at),
                   removed=f.removed or None)


class _Sha256Reader:
    """Hashes the bytes as storage reads them: the upload's fingerprint for Idempotency-Key."""

    def __init__(self, raw, filename: str) -> None:
        self._raw = raw
        self._hash = hashlib.sha256(filename.encode() + b"\0")

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._hash.update(data)
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@router.get("/v1/files/{file_id}", response_model=FileOut, summary="An uploaded file's metadata",
            responses={404: {"description": "No such file for this account (`file_not_found`)"}})
def get_file(file_id: str, caller: CurrentAccount, clients: ClientsDep) -> FileOut:
    return file_out(clients.jobs.GetFile(jobs_pb2.GetFileRequest(file_id=file_id, account_id=caller.account_id),
                                         timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata))


@router.delete("/v1/files/{file_id}", status_code=204, response_class=Response, summary="Delete an uploaded file",
               description="Removes the file from storage; its record stays, so jobs and `GET /v1/files/{file_id}` "
               "show `removed: deleted`, and new jobs on it answer 410 `deleted`. Idempotent.",
               responses={404: {"description": "No such file for this account (`file_not_found`)"},
                          409: {"description": "A queued or running job reads the file (`file_in_use`)"}})
def delete_file(file_id: str, caller: CurrentAccount, clients: ClientsDep) -> Response:
    clients.jobs.DeleteFile(jobs_pb2.DeleteFileRequest(file_id=file_id, account_id=caller.account_id),
                            timeout=clients.settings.grpc_timeout_s, metadata=caller.metadata)
    return Response(status_code=204)
