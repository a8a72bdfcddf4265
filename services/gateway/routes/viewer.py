"""The results page of a job: GET /v1/jobs/{job_id}/view, opened from the job's signed ``viewer_url``.

No token reaches the browser: the link's signature (``services.gateway.viewer_links``) is the
credential, checked on the page and on its data. The page is static (``static/viewer/``: plain
JS, canvas and media elements, no build step, nothing fetched from elsewhere); its data comes
from ``/view/data``: the job document, fresh signed URLs for the input and every audio result,
their waveform peaks (computed here, cached per object: results never change) and the parsed
JSON results (enhance ``report.json``, separate ``manifest.json``, diarize ``diarization.json``).
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from services.common.audio import InvalidAudio
from services.common.pb.timbr.v1 import jobs_pb2
from services.common.storage import Storage, StorageError
from services.gateway import viewer_links
from services.gateway.deps import Clients, ClientsDep
from services.gateway.errors import ApiError
from services.gateway.routes.jobs import job_out
from services.gateway.waveform import peaks

router = APIRouter(tags=["Results page"])
STATIC = Path(__file__).resolve().parent.parent / "static" / "viewer"
JSON_RESULTS = {"report.json": "report", "manifest.json": "manifest", "diarization.json": "diarization"}
MAX_JSON_BYTES = 50 * 1024 * 1024
# The page loads its own script, style and data from this origin, media from the object store.
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src *; "
                                      "frame-ancestors 'none'",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}

Account = Annotated[str, Query(description="The account in the signed link")]
Expires = Annotated[int, Query(description="Unix time the link expires")]
Signature = Annotated[str, Query(description="HMAC of the link")]


def _checked(clients: Clients, job_id: str, account: str, expires: int, signature: str) -> jobs_pb2.Job:
    try:
        viewer_links.verify(clients.settings.signing_secret, job_id, account, expires, signature)
    except viewer_links.BadViewerLink as exc:
        raise ApiError(403, exc.code, str(exc)) from exc
    return clients.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id, account_id=account),
                               timeout=clients.settings.grpc_timeout_s)


@router.get("/v1/jobs/{job_id}/view", response_class=FileResponse, summary="The results page of a job",
            description="Open the job's `viewer_url` (signed, no token): waveforms and players, stems with "
            "solo/mute, before/after with the loudness report, a speaker timeline and a clickable transcript.",
            responses={200: {"content": {"text/html": {}}},
                       403: {"description": "Altered or expired link (`invalid_signature`, `url_expired`)"}})
def view(job_id: str, clients: ClientsDep, account: Account, expires: Expires, signature: Signature):
    _checked(clients, job_id, account, expires, signature)
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/v1/jobs/{job_id}/view/data", include_in_schema=False)
def view_data(job_id: str, clients: ClientsDep, account: Account, expires: Expires, signature: Signature) -> dict:
    job = _checked(clients, job_id, account, expires, signature)
    storage, ttl = clients.storage, clients.settings.signed_url_ttl_s
    doc = job_out(job, clients).model_dump(mode="json")
    data: dict[str, Any] = {"job": doc, "input": None, "tracks": [], **dict.fromkeys(JSON_RESULTS.values())}
    try:
        f = clients.jobs.GetFile(jobs_pb2.GetFileRequest(file_id=job.file_id, account_id=account),
                                 timeout=clients.settings.grpc_timeout_s)
        if not f.removed and storage.exists(f.storage_key):
            data["input"] = {"name": f.filename, "url": storage.signed_url(f.storage_key, ttl, f.filename),
                             "peaks": _peaks(storage, f.storage_key)}
    except (grpc.RpcError, StorageError, InvalidAudio):
        pass    # the upload is gone: the page shows the results alone
    if doc["status"] != "completed" or job.results_removed:
        return data
    for r in job.results:
        if r.name in JSON_RESULTS and r.size_bytes <= MAX_JSON_BYTES:
            data[JSON_RESULTS[r.name]] = _read_json(storage, r.storage_key)
        elif r.content_type.startswith("audio/"):
            data["tracks"].append({"name": r.name, "url": storage.signed_url(r.storage_key, ttl, r.name),
                                   "peaks": _peaks(storage, r.storage_key)})
    return data


@router.get("/v1/viewer/static/{name}", include_in_schema=False)
def static(name: str):
    if name not in {p.name for p in STATIC.iterdir()}:
        raise ApiError(404, "not_found", f"no asset {name!r}")
    return FileResponse(STATIC / name, headers={"Cache-Control": "public, max-age=300"})


# ---------------------------------------------------------------------- object reads
_CACHE: OrderedDict[str, dict] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 256


def _peaks(storage: Storage, key: str) -> dict | None:
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    try:
        with _readable(storage, key) as path:
            value = peaks(path)
    except (StorageError, InvalidAudio):
        return None
    with _CACHE_LOCK:
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def _read_json(storage: Storage, key: str) -> Any:
    try:
        with _readable(storage, key) as path:
            return json.loads(path.read_text(encoding="utf-8"))
    except (StorageError, ValueError):
        return None


@contextmanager
def _readable(storage: Storage, key: str) -> Iterator[Path]:
    """A local path to the object: in place for local storage, a temporary copy otherwise."""
    local = storage.local_path(key)
    if local is not None:
        if not local.is_file():
            raise StorageError(f"missing object {key}")
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="timbr-view-") as tmp:
        yield storage.download_to(key, Path(tmp) / Path(key).name)
