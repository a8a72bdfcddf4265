"""Timbr's Python SDK: ``Timbr`` (the client), typed errors, and the webhook verifier."""

from timbr import webhooks
from timbr.aio import AsyncTimbr
from timbr.client import Timbr
from timbr.errors import (
    APIError,
    AuthenticationError,
    Conflict,
    ConnectionFailed,
    Gone,
    InsufficientCredits,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TimbrError,
    ValidationError,
    WaitTimeout,
    WebhookSignatureError,
)
from timbr.models import Account, File, Job, Result
from timbr.retry import RetryPolicy

__version__ = "0.1.0"
__all__ = [
    "APIError",
    "Account",
    "AsyncTimbr",
    "AuthenticationError",
    "Conflict",
    "ConnectionFailed",
    "File",
    "Gone",
    "InsufficientCredits",
    "Job",
    "JobFailed",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "Result",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "Timbr",
    "TimbrError",
    "ValidationError",
    "WaitTimeout",
    "WebhookSignatureError",
    "webhooks",
]
