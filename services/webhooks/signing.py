"""Webhook signatures, as Stripe signs: ``Timbr-Signature: t=<unix>,v1=<hex>``.

``v1`` is HMAC-SHA256, keyed with the account's webhook secret (the whole ``whsec_...``
string, as UTF-8), of ``f"{t}."`` followed by the raw request body. The timestamp is signed
too, so a receiver that refuses old ``t`` (5 minutes is usual) refuses replays.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from services.common.digests import same_digest

HEADER = "Timbr-Signature"


def signature(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    return f"t={t},v1={signature(secret, t, body)}"


def verify(secret: str, header: str, body: bytes, tolerance_s: int = 300, now: float | None = None) -> bool:
    """What a receiver does: recompute, compare in constant time, refuse stale timestamps."""
    try:
        fields = dict(item.split("=", 1) for item in header.split(","))
        t = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    return same_digest(signature(secret, t, body), fields.get("v1", ""))
