"""GET /v1/objects/{key}: downloads behind HMAC-signed, expiring URLs (local storage only).

The signature is the credential: no token is needed, so a signed URL can be handed to any
HTTP client. A wrong signature or a past expiry is refused with 403.
"""

from __future__ import annotations

from pathlib import PurePath

import grpc
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from services.common.pb.timbr.v1 import jobs_pb2
from services.common.storage import BadSignature, LocalStorage, ObjectNotFound, StorageError
from services.gateway.deps import ClientsDep
from services.gateway.errors import ApiError

router = APIRouter(tags=["Files"])


@router.get("/v1/objects/{key:path}", summary="Download a result through its signed URL",
            response_class=FileResponse, responses={403: {"description": "Bad or expired signature"}})
def download(key: str, clients: ClientsDep, expires: int = Query(...), signature: str = Query(...)):
    storage = clients.storage
    if not isinstance(storage, LocalStorage):
        raise ApiError(404, "not_found", "downloads are served by the object store")
    try:
        path = storage.verify(key, expires, signature)
    except BadSignature as exc:
        code = "url_expired" if "expired" in str(exc) else "invalid_signature"
        raise ApiError(403, code, str(exc)) from exc
    except ObjectNotFound as exc:
        raise _missing(key, clients) from exc
    except StorageError as exc:
        raise ApiError(403, "invalid_signature", str(exc)) from exc
    return FileResponse(path, filename=PurePath(key).name)


def _missing(key: str, clients) -> ApiError:
    """A validly signed result that is gone: 410 with why (deleted, expired), else 404."""
    parts = key.split("/")
    if len(parts) >= 3 and parts[0] == "silver":
        try:
            job = clients.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=parts[2]), timeout=clients.settings.grpc_timeout_s)
        except grpc.RpcError:
            job = None
        if job is not None and job.results_removed:
            how = "deleted on request" if job.results_removed == "deleted" else "removed after the retention period"
            return ApiError(410, job.results_removed, f"the results of job {job.job_id} were {how}")
    return ApiError(404, "not_found", "the object no longer exists")
