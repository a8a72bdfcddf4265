"""Billing errors; the gRPC servicer maps them to status codes, nothing else does."""


class BillingError(Exception):
    """Base of billing errors."""


class NotFound(BillingError):
    pass


class Unauthenticated(BillingError):
    pass


class InsufficientCredits(BillingError):
    def __init__(self, needed: int, available: int) -> None:
        super().__init__(f"insufficient credits: the job needs {needed}, the balance is {available}")
        self.needed = needed
        self.available = available


class InvalidRequest(BillingError):
    pass


class Conflict(BillingError):
    """A settle that contradicts an earlier one (confirm after release, or the reverse)."""
