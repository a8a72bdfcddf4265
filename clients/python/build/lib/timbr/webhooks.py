"""Verify the signature of a webhook delivery before trusting its body.

Timbr signs each delivery with the account's webhook secret, as Stripe does:
``Timbr-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``. A receiver
recomputes the HMAC over the raw bytes it received (before any JSON parsing), compares in
constant time, and refuses a timestamp older than ``tolerance`` seconds so that a captured
delivery cannot be replayed later. Several ``v1=`` entries may be present (secret rotation);
one match is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from timbr.errors import WebhookSignatureError

SIGNATURE_HEADER = "Timbr-Signature"
DELIVERY_HEADER = "Timbr-Delivery-Id"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The header value Timbr sends for ``body`` (for tests and for receivers' own tests)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(body: bytes | str, header: str | None, secret: str, tolerance: float = 300.0,
           now: float | None = None) -> dict[str, Any]:
    """Check ``header`` against ``body``; return the parsed JSON body, or raise WebhookSignatureError."""
    raw = body.encode() if isinstance(body, str) else body
    if not header:
        raise WebhookSignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or not signatures:
        raise WebhookSignatureError(f"malformed {SIGNATURE_HEADER} header")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > tolerance:
        raise WebhookSignatureError(f"timestamp is {age:.0f} s away from now (tolerance {tolerance:g} s)")
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise WebhookSignatureError("signature does not match the body")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise WebhookSignatureError("the signed body is not JSON") from exc
