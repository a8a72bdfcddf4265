"""When a job is tried again, and when it is given up and dead-lettered: the whole policy.

- Within one delivery, a transient failure (any exception outside the error tree, or a
  ``ModelError``) is retried ``max_attempts`` times with exponential backoff, then the job
  fails as ``processing_failed``.
- A job whose deliveries keep stopping their worker (crash, kill -9) fails as
  ``worker_crashed`` once it is delivered more than ``max_deliveries`` times.
- Both of those go to the dead-letter topic; a permanent error (``invalid_audio``,
  ``validation_error`` ...) fails at once and does not.
- ``DependencyUnavailable`` (jobs or broker away) and ``Cancelled`` are not failures of the
  job: they pass through untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from services.common.logging import get_logger
from services.inference.errors import (
    Cancelled,
    DependencyUnavailable,
    RetriesExhausted,
    WorkerCrashed,
    job_error,
)

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    max_deliveries: int = 3
    backoff_base_s: float = 2.0

    def backoff_s(self, attempt: int) -> float:
        return self.backoff_base_s * 2 ** (attempt - 1)

    def check_delivery(self, delivery: int) -> None:
        """Raise ``WorkerCrashed`` when this delivery is one too many."""
        if delivery > self.max_deliveries:
            raise WorkerCrashed(f"the job stopped its worker {delivery - 1} times and was abandoned")

    def run(self, attempt: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
        """``attempt()`` until it succeeds, fails permanently, or the tries run out (``RetriesExhausted``)."""
        last = ""
        for n in range(1, self.max_attempts + 1):
            try:
                return attempt()
            except (DependencyUnavailable, Cancelled):
                raise
            except Exception as exc:
                if not job_error(exc).retryable:
                    raise
                last = f"{type(exc).__name__}: {exc}"
                log.exception("job.attempt_failed", attempt=n)
                if n < self.max_attempts:
                    sleep(self.backoff_s(n))
        raise RetriesExhausted(f"processing failed after {self.max_attempts} attempts: {last}")

    @staticmethod
    def dead_letters(exc: BaseException) -> bool:
        """Whether a failed job's request goes to the dead-letter topic."""
        return isinstance(exc, RetriesExhausted | WorkerCrashed)
