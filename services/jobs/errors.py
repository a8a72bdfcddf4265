"""Jobs errors, each with its public API error code; the servicer maps them to gRPC status."""


class JobsError(Exception):
    code = "internal_error"

    def __init__(self, message: str, **extra) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class FileNotFound(JobsError):
    code = "file_not_found"


class JobNotFound(JobsError):
    code = "job_not_found"


class InvalidRequest(JobsError):
    code = "validation_error"


class InsufficientCredits(JobsError):
    code = "insufficient_credits"


class InvalidState(JobsError):
    code = "invalid_state"


class Unavailable(JobsError):
    """A dependency (billing) did not answer; the caller may retry."""

    code = "service_unavailable"
