"""Errors of the inference service.

PipelineError carries a documented API error code and is permanent: the job fails at once,
credits are released. Every other exception is transient and retried with backoff.
"""


class InferenceError(Exception):
    """Base of this service's errors."""


class PipelineError(InferenceError):
    """A permanent job failure with an API error code (``invalid_audio``, ``validation_error`` ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnknownJobType(PipelineError):
    def __init__(self, job_type: str) -> None:
        super().__init__("unsupported_job_type", f"no pipeline is registered for job type {job_type!r}")
