"""GCS for real: the storage suite against gcp-storage-emulator, V4 URLs signed through IAM
signBlob with an access token and no private key (GKE Workload Identity), signing failures as
503 ``storage_unavailable`` (never 500; the list still lists), and a whole job through the stack
with the GCS backend."""

from __future__ import annotations

import io
import time
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from services.common.settings import CommonSettings
from services.common.storage import (
    BadSignature,
    GCSStorage,
    LocalStorage,
    ObjectNotFound,
    StorageUnavailable,
    make_storage,
)
from tests.support.gcs import SIGNER, FakeGoogle, gcs_emulator, gcs_env

BUCKET = "timbr-test"


@pytest.fixture(scope="module")
def google():
    g = FakeGoogle()
    yield g
    g.close()


@pytest.fixture(scope="module")
def emulator():
    with gcs_emulator(BUCKET) as url:
        yield url


def _environ(monkeypatch, env: dict[str, str]) -> None:
    from google.auth.compute_engine import _metadata

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # google-auth reads GCE_METADATA_HOST once, at import; the services' processes get it in time.
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", env["GCE_METADATA_HOST"])


@pytest.fixture
def gcs(emulator, google, monkeypatch) -> GCSStorage:
    """Built from settings, as the services build it."""
    _environ(monkeypatch, gcs_env(emulator, google, BUCKET))
    store = make_storage(CommonSettings())
    assert isinstance(store, GCSStorage)
    return store


@pytest.fixture(params=["local", "gcs"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "objects", "secret", "http://127.0.0.1:1")
    return request.getfixturevalue("gcs")


class _Unseekable:
    """A request body as the gateway streams it: read() only."""

    def __init__(self, data: bytes) -> None:
        self.read = io.BytesIO(data).read


DATA = bytes(range(256)) * 40_000  # 10 MB: more than one 8 MB chunk of a resumable upload


def test_put_get_range_delete(store, tmp_path):
    key = f"silver/acc/job_{time.monotonic_ns()}/out.bin"
    assert store.put_stream(key, _Unseekable(DATA)) == len(DATA)
    assert store.exists(key) and store.size(key) == len(DATA)
    got = store.download_to(key, tmp_path / "got.bin")
    assert got.read_bytes() == DATA
    assert store.read_range(key, 0, 9) == DATA[:10]
    assert store.read_range(key, 8 << 20, (8 << 20) + 99) == DATA[8 << 20:(8 << 20) + 100]  # across a chunk
    assert store.read_range(key, len(DATA) - 5) == DATA[-5:]
    store.delete(key)
    store.delete(key)  # idempotent
    assert not store.exists(key)
    with pytest.raises(ObjectNotFound):
        store.read_range(key, 0, 1)
    with pytest.raises(ObjectNotFound):
        store.download_to(key, tmp_path / "gone.bin")
    with pytest.raises(ObjectNotFound):
        store.size(key)


def test_gcs_url_signed_through_iam_without_a_key(gcs, google, emulator):
    """No private key anywhere: the string to sign goes to signBlob with the access token; the
    URL points at the configured endpoint, serves the object, and carries the signature of
    exactly that string by the service account's key."""
    key = "silver/acc/job_sig/speech.wav"
    gcs.put_stream(key, io.BytesIO(b"RIFF-and-more"), "audio/wav")
    before = len(google.signed)
    url = gcs.signed_url(key, 900, "speech.wav")
    assert len(google.signed) == before + 1
    parsed = urlparse(url)
    q = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    assert url.startswith(f"{emulator}/{BUCKET}/{key}?")
    assert q["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256" and q["X-Goog-Expires"] == "900"
    assert q["X-Goog-Credential"].startswith(f"{SIGNER}/")
    string_to_sign = google.signed[-1]
    assert string_to_sign.startswith(b"GOOG4-RSA-SHA256\n" + q["X-Goog-Date"].encode())
    google.verify(bytes.fromhex(q["X-Goog-Signature"]), string_to_sign)
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == b"RIFF-and-more"


def test_expiry(store):
    key = "silver/acc/job_exp/x.bin"
    store.put_stream(key, io.BytesIO(b"x"))
    q = {k: v[0] for k, v in parse_qs(urlparse(store.signed_url(key, 60)).query).items()}
    if isinstance(store, LocalStorage):
        assert abs(int(q["expires"]) - (time.time() + 60)) < 5
        past = int(time.time()) - 1
        with pytest.raises(BadSignature, match="expired"):
            store.verify(key, past, store._signature(key, past))
    else:  # GCS enforces it server-side; the signed request states it
        assert q["X-Goog-Expires"] == "60"
        signed_at = time.mktime(time.strptime(q["X-Goog-Date"], "%Y%m%dT%H%M%SZ")) - time.timezone
        assert abs(signed_at - time.time()) < 60


def test_signing_failure_is_typed(gcs, google):
    google.fail_signing = True
    try:
        with pytest.raises(StorageUnavailable, match="signBlob answered 503"):
            gcs.signed_url("silver/a/j/x.wav", 60)
    finally:
        google.fail_signing = False


def test_a_failing_bucket_is_typed(google, monkeypatch):
    """An endpoint that refuses every storage call (here: one that is no GCS at all)."""
    _environ(monkeypatch, gcs_env(google.url, google, BUCKET))
    store = make_storage(CommonSettings())
    with pytest.raises(StorageUnavailable):
        store.put_stream("bronze/a/f/x.wav", io.BytesIO(b"x"))
    with pytest.raises(StorageUnavailable):
        store.exists("bronze/a/f/x.wav")


def test_a_job_through_the_stack_on_gcs(tmp_path, pg_schemas, emulator, google):
    """Upload, process and download with the GCS backend; while signing fails, the job answers 503
    storage_unavailable and the list still lists (URLs null); afterwards both sign again."""
    from tests.conftest import Account, running_stack
    from tests.support.api import upload_ok, wait_job
    from tests.support.audio import tone_wav

    env = gcs_env(emulator, google, BUCKET)
    with running_stack(tmp_path / "stack", pg_schemas, extra_env=env) as stack:
        from services.common.grpc_util import channel
        from services.common.pb.timbr.v1 import billing_pb2_grpc

        ch = channel(f"127.0.0.1:{stack.billing_port}")
        acc = Account(billing_pb2_grpc.BillingStub(ch), 100)
        with httpx.Client(base_url=stack.url, timeout=60) as api:
            info = upload_ok(api, acc.headers, tone_wav(1.5, rate=16000), "gcs.wav")
            r = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": info["file_id"]})
            assert r.status_code == 200, r.text
            job = wait_job(api, acc.headers, r.json()["job_id"])
            assert job["status"] == "completed", job
            results = {x["name"]: x for x in job["results"]}
            assert results["enhanced.wav"]["url"].startswith(f"{emulator}/{BUCKET}/silver/{acc.account_id}/")
            audio = httpx.get(results["enhanced.wav"]["url"])
            assert audio.status_code == 200 and audio.content[:4] == b"RIFF"

            google.fail_signing = True
            try:
                one = api.get(f"/v1/jobs/{job['job_id']}", headers=acc.headers)
                assert one.status_code == 503 and one.json()["error"]["code"] == "storage_unavailable"
                assert one.headers["retry-after"]
                listed = api.get("/v1/jobs", headers=acc.headers)
                assert listed.status_code == 200
                (doc,) = [j for j in listed.json()["jobs"] if j["job_id"] == job["job_id"]]
                assert doc["status"] == "completed" and {x["url"] for x in doc["results"]} == {None}
            finally:
                google.fail_signing = False
            again = api.get(f"/v1/jobs/{job['job_id']}", headers=acc.headers)
            assert again.status_code == 200 and all(x["url"] for x in again.json()["results"])
        ch.close()
