"""Storage: local objects with HMAC-signed URLs, and GCS V4 signing (offline, with a generated key)."""

from __future__ import annotations

import io
import time
from urllib.parse import parse_qs, urlparse

import pytest

from services.common.storage import BadSignature, GCSStorage, LocalStorage, ObjectNotFound, StorageError


def test_local_roundtrip_and_signatures(tmp_path):
    store = LocalStorage(tmp_path, "secret", "http://h:1")
    size = store.put_stream("silver/a/j/x.bin", io.BytesIO(b"x" * (3 << 20)))
    assert size == 3 << 20 and store.exists("silver/a/j/x.bin") and store.size("silver/a/j/x.bin") == size
    url = urlparse(store.signed_url("silver/a/j/x.bin", 60))
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.path == "/v1/objects/silver/a/j/x.bin"
    assert store.verify("silver/a/j/x.bin", int(q["expires"]), q["signature"]).stat().st_size == size
    with pytest.raises(BadSignature):
        store.verify("silver/a/j/x.bin", int(q["expires"]) + 1, q["signature"])
    with pytest.raises(BadSignature):
        LocalStorage(tmp_path, "other-secret", "http://h:1").verify("silver/a/j/x.bin", int(q["expires"]),
                                                                     q["signature"])
    past = int(time.time()) - 5
    with pytest.raises(BadSignature, match="expired"):
        store.verify("silver/a/j/x.bin", past, store._signature("silver/a/j/x.bin", past))
    store.delete("silver/a/j/x.bin")
    with pytest.raises(ObjectNotFound):
        store.size("silver/a/j/x.bin")
    for bad in ("../etc/passwd", "/abs", "a//b", "a/./b", ""):
        with pytest.raises(StorageError):
            store.put_stream(bad, io.BytesIO(b""))


def _service_account_info() -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "timbr-test", "private_key_id": "k1", "private_key": pem,
            "client_email": "signer@timbr-test.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": "https://oauth2.example.invalid/token"}, key


def test_gcs_v4_signed_url_is_signed_with_the_service_account_key():
    from google.cloud import storage as gcs
    from google.oauth2 import service_account

    info, key = _service_account_info()
    creds = service_account.Credentials.from_service_account_info(info)
    store = GCSStorage("timbr-bucket", client=gcs.Client(project="timbr-test", credentials=creds))
    url = urlparse(store.signed_url("silver/acc/job/speech.wav", 900, "speech.wav"))
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.path == "/timbr-bucket/silver/acc/job/speech.wav"
    assert q["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256" and q["X-Goog-Expires"] == "900"
    assert q["X-Goog-Credential"].startswith("signer@timbr-test.iam.gserviceaccount.com/")
    assert q["X-Goog-SignedHeaders"] == "host"
    assert 'filename="speech.wav"' in q["response-content-disposition"]
    signature = bytes.fromhex(q["X-Goog-Signature"])
    assert len(signature) == key.key_size // 8  # an RSA-2048 signature by that key
