"""Billing errors, each with its public API error code; the gRPC servicer maps them to status
codes and nothing else does."""

from __future__ import annotations

from services.common.errors import CodedError


class BillingError(CodedError):
    """Base of billing errors."""


class NotFound(BillingError):
    code = "not_found"


class Unauthenticated(BillingError):
    code = "unauthorized"


class InsufficientCredits(BillingError):
    code = "insufficient_credits"

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(f"insufficient credits: the job needs {needed}, the balance is {available}")
        self.needed = needed
        self.available = available


class InvalidRequest(BillingError):
    code = "validation_error"


class Conflict(BillingError):
    """A settle that contradicts an earlier one (confirm after release, or the reverse)."""

    code = "invalid_state"
