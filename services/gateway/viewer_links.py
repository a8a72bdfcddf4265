"""Signed links to a job's results page: the signature is the credential, as for downloads.

``viewer_url`` carries the job, its account and an expiry, signed with HMAC-SHA256 under the
gateway's signing secret (with a purpose prefix, so a download signature can never pass for a
viewer one). Whoever holds the link sees that one job's page until it expires, without a
token in the browser; changing any part of it breaks the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

from services.common.digests import same_digest


class BadViewerLink(Exception):
    """The link was altered or its time is up; ``code`` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _mac(secret: str, job_id: str, account_id: str, expires: int) -> str:
    msg = f"viewer\n{job_id}\n{account_id}\n{expires}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def viewer_url(public_url: str, secret: str, job_id: str, account_id: str, ttl_s: int) -> str:
    expires = int(time.time()) + int(ttl_s)
    query = urlencode({"account": account_id, "expires": expires,
                       "signature": _mac(secret, job_id, account_id, expires)})
    return f"{public_url.rstrip('/')}/v1/jobs/{job_id}/view?{query}"


def verify(secret: str, job_id: str, account_id: str, expires: int, signature: str) -> None:
    if not same_digest(_mac(secret, job_id, account_id, expires), signature):
        raise BadViewerLink("invalid_signature", "the viewer link signature is invalid")
    if expires < time.time():
        raise BadViewerLink("url_expired", "the viewer link has expired")
