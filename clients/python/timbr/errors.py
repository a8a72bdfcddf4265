"""Typed errors, one class per kind of API error code.

The API answers every error as ``{"error": {"code", "message", ...}}``; ``from_response``
picks the class by ``code`` (falling back on the HTTP status for a code this SDK does not
know yet), so callers catch ``InsufficientCredits`` rather than compare strings.

    TimbrError
    ├── APIError                     the server answered with an error body
    │   ├── AuthenticationError      401 unauthorized
    │   ├── InsufficientCredits      402 insufficient_credits (.required, .available)
    │   ├── PermissionDenied         403 invalid_signature, url_expired
    │   ├── NotFound                 404 file_not_found, job_not_found, not_found
    │   ├── Conflict                 409 invalid_state, file_in_use, idempotency_conflict,
    │   │                                idempotency_in_progress (retried: the first request is running)
    │   ├── Gone                     410 expired, deleted
    │   ├── PayloadTooLarge          413 payload_too_large
    │   ├── ValidationError          422 validation_error, invalid_audio, invalid_srt,
    │   │                                invalid_webhook_url (.details)
    │   ├── RateLimited              429 rate_limited (.retry_after)
    │   ├── ServerError              500 internal_error and other 5xx
    │   └── ServiceUnavailable       503 service_unavailable, storage_unavailable
    ├── ConnectionFailed             no answer (refused, reset, timed out) after every retry
    ├── JobFailed                    a job ended failed or cancelled (.job, .code)
    ├── WaitTimeout                  wait() gave up before the job ended (.job)
    └── WebhookSignatureError        a webhook body whose signature does not verify
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from timbr.models import Job


class TimbrError(Exception):
    """Base of every error this SDK raises."""


class APIError(TimbrError):
    def __init__(self, status: int, code: str, message: str, body: dict[str, Any] | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.body = body or {}
        self.request_id = request_id


class AuthenticationError(APIError): ...


class InsufficientCredits(APIError):
    @property
    def required(self) -> int | None:
        return self.body.get("required")

    @property
    def available(self) -> int | None:
        return self.body.get("available")


class PermissionDenied(APIError): ...


class NotFound(APIError): ...


class Conflict(APIError): ...


class Gone(APIError): ...


class PayloadTooLarge(APIError): ...


class ValidationError(APIError):
    @property
    def details(self) -> list[dict[str, Any]]:
        return self.body.get("details", [])


class RateLimited(APIError):
    retry_after: float | None = None


class ServerError(APIError): ...


class ServiceUnavailable(ServerError): ...


class ConnectionFailed(TimbrError): ...


class JobFailed(TimbrError):
    def __init__(self, job: Job) -> None:
        err = job.error or {}
        self.job = job
        self.code = err.get("code") or job.status
        super().__init__(f"job {job.job_id} {job.status}: {self.code}: {err.get('message', '')}".rstrip(": "))


class WaitTimeout(TimbrError):
    def __init__(self, job: Job, timeout: float) -> None:
        self.job = job
        super().__init__(f"job {job.job_id} still {job.status} after {timeout:g} s")


class WebhookSignatureError(TimbrError): ...


BY_CODE: dict[str, type[APIError]] = {
    "unauthorized": AuthenticationError,
    "insufficient_credits": InsufficientCredits,
    "invalid_signature": PermissionDenied, "url_expired": PermissionDenied,
    "file_not_found": NotFound, "job_not_found": NotFound, "not_found": NotFound,
    "invalid_state": Conflict, "file_in_use": Conflict, "idempotency_conflict": Conflict,
    "idempotency_in_progress": Conflict,
    "expired": Gone, "deleted": Gone,
    "payload_too_large": PayloadTooLarge,
    "validation_error": ValidationError, "invalid_audio": ValidationError, "invalid_srt": ValidationError,
    "invalid_webhook_url": ValidationError,
    "rate_limited": RateLimited,
    "internal_error": ServerError,
    "service_unavailable": ServiceUnavailable, "storage_unavailable": ServiceUnavailable,
}
BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError, 402: InsufficientCredits, 403: PermissionDenied, 404: NotFound, 409: Conflict,
    410: Gone, 413: PayloadTooLarge, 422: ValidationError, 429: RateLimited, 503: ServiceUnavailable,
}


def from_response(response: httpx.Response) -> APIError:
    """The typed error for a response of status >= 400 (any body, JSON or not)."""
    try:
        body = response.json().get("error") or {}
    except (ValueError, AttributeError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    status = response.status_code
    code = body.get("code") or f"http_{status}"
    cls = BY_CODE.get(code) or BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    err = cls(status, code, body.get("message") or response.reason_phrase or "", body,
              response.headers.get("x-request-id"))
    if isinstance(err, RateLimited):
        err.retry_after = retry_after(response)
    return err


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
