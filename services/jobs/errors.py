"""Jobs errors, each with its public API error code; the servicer maps them to gRPC status."""

from __future__ import annotations

from services.common.errors import CodedError


class JobsError(CodedError):
    """``extra``: string fields for the caller (``job_id`` of ``file_in_use``), sent as trailing metadata."""

    code = "internal_error"

    def __init__(self, message: str, **extra: str) -> None:
        super().__init__(message)
        self.extra = extra


class FileNotFound(JobsError):
    code = "file_not_found"


class JobNotFound(JobsError):
    code = "job_not_found"


class AccountNotFound(JobsError):
    """An account Billing does not know (Billing owns accounts)."""

    code = "not_found"


class InvalidRequest(JobsError):
    code = "validation_error"


class InsufficientCredits(JobsError):
    code = "insufficient_credits"

    def __init__(self, message: str, required: int, available: int) -> None:
        super().__init__(message)
        self.required = required
        self.available = available


class InvalidState(JobsError):
    code = "invalid_state"


class Unavailable(JobsError):
    """A dependency (billing) did not answer; the caller may retry."""

    code = "service_unavailable"


class Gone(JobsError):
    """The file or the results were removed: ``deleted`` on request, ``expired`` by retention."""

    def __init__(self, message: str, removed: str) -> None:
        super().__init__(message)
        self.code = removed


class FileInUse(JobsError):
    """A queued or running job still reads the file."""

    code = "file_in_use"


class IdempotencyConflict(JobsError):
    """The Idempotency-Key was used before with another request."""

    code = "idempotency_conflict"


class IdempotencyInProgress(JobsError):
    """A request with this Idempotency-Key is still being processed; retry shortly."""

    code = "idempotency_in_progress"
