"""The inference service's errors: one tree, each with its job error code, mapped once.

::

    CodedError (services.common.errors)          code            retried
    ├── InvalidAudio (services.common.audio)     invalid_audio   no: the job fails at once
    └── InferenceError
        ├── InvalidParams                        validation_error   no
        ├── InvalidSrt                           invalid_srt        no
        ├── UnsupportedJobType                   unsupported_job_type no
        ├── Cancelled                            (none: the job ended elsewhere; nothing to report)
        ├── RetriesExhausted                     processing_failed  no: every try failed; dead-lettered
        ├── WorkerCrashed                        worker_crashed     no: it stopped its worker too often; dead-lettered
        ├── ModelError                           processing_failed  yes (a model failed on a request)
        │   ├── ModelNotFound                    processing_failed  yes (not registered, or it cannot load here)
        │   └── ModelUnavailable                 processing_failed  yes (the model server did not answer)
        └── DependencyUnavailable                (none: the delivery is retried, the job is not failed)
            ├── JobsUnavailable                  the jobs service did not answer
            └── BrokerUnavailable                the Kafka broker did not acknowledge

``job_error`` is the one place where an exception becomes a job's ``error.code``; nothing
decides anything from an error message's text. Any exception outside the tree is a
transient failure: retried with backoff, then ``processing_failed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from services.common.audio import InvalidAudio
from services.common.errors import CodedError

PROCESSING_FAILED = "processing_failed"
WORKER_CRASHED = "worker_crashed"


class InferenceError(CodedError):
    """Base of this service's errors; ``retryable`` says whether another try may succeed."""

    retryable: ClassVar[bool] = False


class InvalidParams(InferenceError):
    """A parameter the contract accepts but this input cannot honour (mp3 at 96 kHz), or out of contract."""

    code = "validation_error"


class InvalidSrt(InferenceError):
    code = "invalid_srt"


class UnsupportedJobType(InferenceError):
    code = "unsupported_job_type"

    def __init__(self, job_type: str) -> None:
        super().__init__(f"no pipeline is registered for job type {job_type!r}")


class Cancelled(InferenceError):
    """The job was cancelled (or finished elsewhere) while this worker ran it."""

    code = "cancelled"

    def __init__(self, message: str = "the job ended while it ran") -> None:
        super().__init__(message)


class RetriesExhausted(InferenceError):
    code = PROCESSING_FAILED


class WorkerCrashed(InferenceError):
    code = WORKER_CRASHED


class ModelError(InferenceError):
    """A model failed on a request (bad input shape, runtime error)."""

    code = PROCESSING_FAILED
    retryable = True


class ModelNotFound(ModelError):
    """No model of that name is served here: not registered, or it cannot load (not installed)."""


class ModelUnavailable(ModelError):
    """The model server could not be reached (or the model was not ready) within the retries."""


class DependencyUnavailable(InferenceError):
    """A service the worker needs (jobs, the broker) did not answer: wait, reconnect, redeliver."""

    code = "service_unavailable"
    retryable = True


class JobsUnavailable(DependencyUnavailable):
    pass


class BrokerUnavailable(DependencyUnavailable):
    pass


@dataclass(frozen=True)
class JobFailure:
    code: str
    message: str
    retryable: bool


def job_error(exc: BaseException) -> JobFailure:
    """The job error an exception stands for: the one mapping from exceptions to error codes."""
    if isinstance(exc, CodedError):
        return JobFailure(exc.code, exc.message, getattr(exc, "retryable", False))
    return JobFailure(PROCESSING_FAILED, f"{type(exc).__name__}: {exc}", True)


__all__ = [
    "PROCESSING_FAILED",
    "WORKER_CRASHED",
    "BrokerUnavailable",
    "Cancelled",
    "DependencyUnavailable",
    "InferenceError",
    "InvalidAudio",
    "InvalidParams",
    "InvalidSrt",
    "JobFailure",
    "JobsUnavailable",
    "ModelError",
    "ModelNotFound",
    "ModelUnavailable",
    "RetriesExhausted",
    "UnsupportedJobType",
    "WorkerCrashed",
    "job_error",
]
