"""When to try a request again, and how long to wait first.

Retried: network errors (refused, reset, timed out), 429, every 5xx, and 409
``idempotency_in_progress`` (the first request with this key is still running). Never retried:
other 4xx, which the same request would get again. Waits grow exponentially with full jitter
(``uniform(0, min(cap, base * 2**attempt))``), so many clients that failed together do not
come back together; a ``Retry-After`` header is honoured when the server sends one.
Job-creating calls carry one ``Idempotency-Key`` across all their tries, so a retry after a
lost response returns the first job instead of creating (and charging) a second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    base_s: float = 0.5
    cap_s: float = 8.0

    @staticmethod
    def retryable(status: int, code: str = "") -> bool:
        return status == 429 or status >= 500 or code == "idempotency_in_progress"

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` (attempt 0 is the first retry)."""
        if retry_after is not None:
            return min(retry_after, self.cap_s * 4)
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** attempt))
