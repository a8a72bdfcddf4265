"""Rate limits of the REST edge: per client address, per account, and on failed authentication.

Counters live in Redis when ``TIMBR_REDIS_URL`` is set (shared by every gateway replica), else
in the process (``make run``). Limits are ``limits`` strings, several per setting
(``"20/second;600/minute"``: a burst and a sustained rate), counted over moving windows: "5/minute"
admits at most 5 requests in any 60 s, also across a minute boundary (a sliding-window counter,
which weighs the last window's count, let a sixth through there).
A request over a limit is refused with 429 ``rate_limited`` and ``Retry-After`` (whole seconds
until the window frees a slot). A client whose failed authentications pass their limit is
refused before its token is even looked up. If Redis is unreachable the limits are not
enforced, and that is logged: a limiter outage must not take the API down with it.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from services.common.logging import get_logger
from services.gateway.config import GatewaySettings
from services.gateway.errors import ApiError
from services.gateway.metrics import RATE_LIMITED

log = get_logger(__name__)


class RateLimited(ApiError):
    def __init__(self, scope: str, retry_after_s: int) -> None:
        super().__init__(429, "rate_limited", f"too many requests ({scope}); retry in {retry_after_s} s",
                         retry_after_s=retry_after_s)
        self.headers = {"Retry-After": str(retry_after_s)}


class Limiter:
    def __init__(self, settings: GatewaySettings) -> None:
        uri = settings.redis_url or "memory://"
        options = {"key_prefix": settings.rate_limit_prefix, "wrap_exceptions": True} if settings.redis_url else {}
        self._strategy = MovingWindowRateLimiter(storage_from_string(uri, **options))
        self._client = parse_many(settings.rate_limit_client)
        self._account = parse_many(settings.rate_limit_account)
        self._auth_failures = parse_many(settings.rate_limit_auth_failures)

    def _wait(self, item: RateLimitItem, *keys: str) -> int:
        reset = self._strategy.get_window_stats(item, *keys).reset_time
        return max(1, math.ceil(reset - time.time()))

    def _hit(self, scope: str, items: list[RateLimitItem], key: str) -> None:
        """Count one request against every limit of ``items``; RateLimited if one is exhausted."""
        try:
            for item in items:
                if not self._strategy.hit(item, scope, key):
                    RATE_LIMITED.labels(scope).inc()
                    raise RateLimited(scope, self._wait(item, scope, key))
        except (StorageError, RedisError, OSError) as exc:
            log.error("ratelimit.storage_unavailable", error=repr(exc))

    def client(self, address: str) -> None:
        self._hit("client", self._client, address)

    def account(self, account_id: str) -> None:
        self._hit("account", self._account, account_id)

    def refuse_if_failing_auth(self, address: str) -> None:
        """Before a token is checked: refuse a client that failed too often lately."""
        try:
            for item in self._auth_failures:
                if not self._strategy.test(item, "auth_failures", address):
                    RATE_LIMITED.labels("auth_failures").inc()
                    raise RateLimited("failed authentications", self._wait(item, "auth_failures", address))
        except (StorageError, RedisError, OSError) as exc:
            log.error("ratelimit.storage_unavailable", error=repr(exc))

    def auth_failed(self, address: str) -> None:
        try:
            for item in self._auth_failures:
                self._strategy.hit(item, "auth_failures", address)
        except (StorageError, RedisError, OSError) as exc:
            log.error("ratelimit.storage_unavailable", error=repr(exc))
