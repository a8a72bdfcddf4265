"""timbr.webhooks: a receiver accepts exactly the bodies Timbr signed, recently, with its secret."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from timbr import WebhookSignatureError, webhooks

SECRET = "whsec_test"
BODY = json.dumps({"job_id": "job_1", "status": "completed"}).encode()


def test_a_signed_body_verifies_and_is_parsed():
    header = webhooks.sign(BODY, SECRET, timestamp=1_800_000_000)
    mac = hmac.new(SECRET.encode(), b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={mac}"                  # the documented scheme, byte for byte
    assert webhooks.verify(BODY, header, SECRET, now=1_800_000_010) == {"job_id": "job_1", "status": "completed"}
    assert webhooks.verify(BODY.decode(), header, SECRET, now=1_800_000_010)["job_id"] == "job_1"


def test_rotation_any_v1_may_match():
    good = webhooks.sign(BODY, SECRET, timestamp=100).split("v1=")[1]
    header = f"t=100,v1={'0' * 64},v1={good}"
    assert webhooks.verify(BODY, header, SECRET, now=100)["status"] == "completed"


@pytest.mark.parametrize(("body", "header", "secret", "now", "why"), [
    (BODY + b" ", webhooks.sign(BODY, SECRET, 100), SECRET, 100, "does not match"),      # altered body
    (BODY, webhooks.sign(BODY, "other", 100), SECRET, 100, "does not match"),            # another secret
    (BODY, webhooks.sign(BODY, SECRET, 100).replace("t=100", "t=101"), SECRET, 101, "does not match"),
    (BODY, webhooks.sign(BODY, SECRET, 100), SECRET, 100 + 301, "tolerance"),            # a replay, later
    (BODY, webhooks.sign(BODY, SECRET, 1000), SECRET, 1000 - 301, "tolerance"),          # from the future
    (BODY, None, SECRET, 100, "missing"),
    (BODY, "v1=abc", SECRET, 100, "malformed"),
    (BODY, "t=abc,v1=abc", SECRET, 100, "malformed"),
    (b"not json", webhooks.sign(b"not json", SECRET, 100), SECRET, 100, "not JSON"),
])
def test_anything_else_is_refused(body, header, secret, now, why):
    with pytest.raises(WebhookSignatureError, match=why):
        webhooks.verify(body, header, secret, now=now)
