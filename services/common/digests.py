"""Constant-time comparison of a signature or token that a client sent.

``hmac.compare_digest`` raises TypeError on a ``str`` holding non-ASCII characters, and a URL or a
header may carry anything: compared as UTF-8 bytes, such a value is simply unequal. Each place
that compared on its own met that once (signed downloads, viewer links, webhook headers).
"""

from __future__ import annotations

import hmac


def _raw(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def same_digest(expected: str | bytes, given: str | bytes) -> bool:
    """True when ``given`` equals ``expected``, in time independent of where they differ."""
    return hmac.compare_digest(_raw(expected), _raw(given))
