"""The gateway's errors and their JSON shape: ``{"error": {"code", "message", ...}}``.

Codes: unauthorized (401), file_not_found / job_not_found / not_found (404),
insufficient_credits (402, with ``required`` and ``available``), validation_error (422),
rate_limited (429, with ``retry_after_s`` and a Retry-After header),
invalid_audio (422), invalid_webhook_url (422), payload_too_large (413), invalid_signature /
url_expired (403), invalid_state / file_in_use / idempotency_conflict / idempotency_in_progress
(409), deleted / expired (410: removed from storage on request / by retention),
service_unavailable / storage_unavailable (503, with Retry-After), internal_error (500).
gRPC failures from the jobs and billing services are mapped here and nowhere else.
"""

from __future__ import annotations

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.grpc_util import ERROR_CODE_KEY, error_detail, error_details
from services.common.logging import get_logger
from services.common.pb.timbr.v1 import billing_pb2
from services.common.storage import StorageUnavailable

log = get_logger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra
        self.headers: dict[str, str] = {}


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


_GRPC_HTTP = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
}


# Domain codes whose HTTP status is not the one of their gRPC status.
_CODE_HTTP = {"invalid_state": 409, "file_in_use": 409, "idempotency_conflict": 409,
              "idempotency_in_progress": 409, "deleted": 410, "expired": 410}


def from_grpc(exc: grpc.RpcError) -> ApiError:
    details = error_details(exc)
    code = details.pop(ERROR_CODE_KEY, "")
    status = _GRPC_HTTP.get(exc.code(), 500)
    if code == "insufficient_credits":
        refused = error_detail(exc, billing_pb2.InsufficientCreditsDetail)
        extra = {"required": refused.needed, "available": refused.available} if refused is not None else {}
        return ApiError(402, code, exc.details() or "insufficient credits", **extra)
    status = _CODE_HTTP.get(code, status)
    if not code:
        code = {404: "not_found", 422: "validation_error", 401: "unauthorized", 503: "service_unavailable"}.get(
            status, "internal_error")
    message = exc.details() or code
    if status == 500:
        log.error("grpc.unexpected", grpc_code=exc.code().name, details=exc.details())
        message = "internal error"
    extra = {k: v for k, v in details.items() if k == "job_id"}  # file_in_use names the job
    return ApiError(status, code, message, **extra)


def response_for(exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    return JSONResponse(error_body(exc.code, exc.message, **exc.extra), exc.status,
                        headers={**headers, **exc.headers})


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return response_for(exc)

    @app.exception_handler(StorageUnavailable)
    async def _storage(_: Request, exc: StorageUnavailable):
        log.warning("storage.unavailable", error=str(exc))
        return JSONResponse(error_body("storage_unavailable", "storage is unavailable, retry shortly"), 503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(grpc.RpcError)
    async def _grpc_error(request: Request, exc: grpc.RpcError):
        return await _api_error(request, from_grpc(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        details = [{"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
                   for e in exc.errors()]
        message = "; ".join(f"{d['field']}: {d['message']}" for d in details) or "invalid request"
        return JSONResponse(error_body("validation_error", message, details=details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        log.exception("http.unhandled", error=str(exc))
        return JSONResponse(error_body("internal_error", "internal error"), 500)
