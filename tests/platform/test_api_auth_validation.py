"""Authentication, ownership and every validation rule of the public contract."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from tests.support.api import upload_ok, wait_job
from tests.support.audio import tone_wav


@pytest.mark.parametrize("header", [None, "", "TBR_nope", "Bearer TBR_nope", "Bearer x", "Basic abc", "nope"])
def test_missing_or_bad_token_is_401(api, header):
    headers = {"Authorization": header} if header is not None else {}
    for method, path, kw in (("post", "/v1/upload", {"files": {"file": ("a.wav", tone_wav(0.5))}}),
                             ("post", "/v1/audio/enhance", {"json": {"file_id": "x"}}),
                             ("post", "/v1/audio/separate", {"json": {"file_id": "x"}}),
                             ("post", "/v1/audio/diarize", {"json": {"file_id": "x"}}),
                             ("get", "/v1/jobs/job_x", {}), ("get", "/v1/jobs", {}), ("get", "/v1/account", {})):
        r = getattr(api, method)(path, headers=headers, **kw)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == "unauthorized"


def test_revoked_token_is_401(api, make_account, billing_stub):
    from services.common.pb.timbr.v1 import billing_pb2

    acc = make_account(0)
    assert api.get("/v1/account", headers=acc.headers).status_code == 200
    tokens = billing_stub.ListTokens(billing_pb2.ListTokensRequest(account_id=acc.account_id)).tokens
    billing_stub.RevokeToken(billing_pb2.RevokeTokenRequest(token_id=tokens[0].token_id))
    assert api.get("/v1/account", headers=acc.headers).status_code == 401


def test_other_accounts_files_and_jobs_are_404(api, make_account):
    owner, other = make_account(20), make_account(20)
    f = upload_ok(api, owner.headers, tone_wav(1.0))
    job_id = api.post("/v1/audio/enhance", headers=owner.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    wait_job(api, owner.headers, job_id)
    for path in ("/v1/audio/enhance", "/v1/audio/separate", "/v1/audio/diarize"):
        r = api.post(path, headers=other.headers, json={"file_id": f["file_id"]})
        assert r.status_code == 404 and r.json()["error"]["code"] == "file_not_found"
    r = api.get(f"/v1/jobs/{job_id}", headers=other.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"
    assert api.post(f"/v1/jobs/{job_id}/cancel", headers=other.headers).status_code == 404
    # Unknown ids read exactly the same: existence is never revealed.
    assert api.get("/v1/jobs/job_doesnotexist", headers=other.headers).json() == r.json() | {
        "error": {"code": "job_not_found", "message": "job job_doesnotexist not found"}}
    assert other.balance().reserved == 0 and [e.kind for e in other.ledger()] == ["grant"]


SEPARATE_BAD = [
    {"separation_type": "vocals"}, {"sample_rate": 7999}, {"sample_rate": 192001}, {"sample_rate": "fast"},
    {"bit_depth": 7}, {"bit_depth": 33}, {"bit_depth": 12}, {"output_format": "aac"},
    {"output_format": "flac", "bit_depth": 32}, {"file_id": ""}, {"unknown": 1},
]
ENHANCE_BAD = [
    {"noise_reduction": -0.01}, {"noise_reduction": 1.01}, {"noise_reduction": "lots"}, {"eq_preset": "loud"},
    {"denoise": "maybe"}, {"compression": [1]}, {"normalize": {}}, {"target_lufs": -32}, {"target_lufs": -4},
    {"output_format": "wma"}, {"sample_rate": 1000}, {"bit_depth": 64}, {"file_id": ""},
]
DIARIZE_BAD = [
    {"num_speakers": 0}, {"num_speakers": 21}, {"num_speakers": 2.5}, {"min_speakers": 0}, {"max_speakers": 21},
    {"min_speakers": 4, "max_speakers": 3}, {"num_speakers": 5, "max_speakers": 4}, {"num_speakers": 1, "min_speakers": 2}, {"language": "english!"}, {"language": "x"},
    {"transcribe_model": "wav2vec"}, {"vad_type": "energy"}, {"vad_threshold": -0.1}, {"vad_threshold": 1.1},
    {"vad_min_speech_duration": -1}, {"vad_min_speech_duration": 5.01}, {"vad_min_silence_duration": -0.5},
    {"vad_min_silence_duration": 6}, {"detect_gender": "yes please"}, {"input_srt_file_id": ""}, {"file_id": ""},
]


@pytest.fixture(scope="module")
def rich(stack, billing_stub, api_module):
    from tests.conftest import Account

    acc = Account(billing_stub, 1000)
    return acc, upload_ok(api_module, acc.headers, tone_wav(1.0))["file_id"]


@pytest.fixture(scope="module")
def api_module(stack):
    import httpx

    with httpx.Client(base_url=stack.url, timeout=60) as client:
        yield client


@pytest.mark.parametrize(("path", "bad"), [("/v1/audio/separate", b) for b in SEPARATE_BAD]
                         + [("/v1/audio/enhance", b) for b in ENHANCE_BAD]
                         + [("/v1/audio/diarize", b) for b in DIARIZE_BAD])
def test_each_out_of_contract_parameter_is_422(api_module, rich, path, bad):
    acc, file_id = rich
    r = api_module.post(path, headers=acc.headers, json={"file_id": file_id, **bad})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error" and err["message"]
    field = next(iter(bad))
    assert any(field in d["field"] or field in err["message"] for d in err["details"]) or field == "output_format"
    assert acc.balance().reserved == 0


def test_missing_file_id_and_non_json_are_422(api_module, rich):
    acc, _ = rich
    assert api_module.post("/v1/audio/enhance", headers=acc.headers, json={}).status_code == 422
    r = api_module.post("/v1/audio/enhance", headers=acc.headers, content=b"{not json",
                        )
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


def test_boundaries_of_the_ranges_are_accepted(api_module, rich, stack):
    acc, file_id = rich
    ok = [
        ("/v1/audio/separate", {"sample_rate": 8000, "bit_depth": 8, "output_format": "mp3",
                                "separation_type": "speech-nonlingual"}),
        ("/v1/audio/separate", {"sample_rate": 192000, "bit_depth": 32, "output_format": "wav",
                                "separation_type": "dialogue-music-effect"}),
        ("/v1/audio/enhance", {"noise_reduction": 0, "denoise": False, "eq_preset": "bass_boost",
                               "compression": True, "normalize": False, "target_lufs": -31}),
        ("/v1/audio/diarize", {"num_speakers": 20, "language": "ko", "vad_type": "webrtc", "vad_threshold": 1,
                               "vad_min_speech_duration": 5, "vad_min_silence_duration": 0,
                               "detect_gender": True}),
        ("/v1/audio/diarize", {"num_speakers": None, "language": "auto", "vad_type": "silero"}),
    ]
    for path, body in ok:
        r = api_module.post(path, headers=acc.headers, json={"file_id": file_id, **body})
        assert r.status_code == 200, (path, r.text)
        job = r.json()
        # Only enhance has a worker in the test stack: cancel the others so credits come back.
        if job["job_type"] != "enhance":
            assert api_module.post(f"/v1/jobs/{job['job_id']}/cancel", headers=acc.headers).status_code == 200
    jobs = api_module.get("/v1/jobs", headers=acc.headers).json()["jobs"]
    diarize = [j for j in jobs if j["job_type"] == "diarize"]
    assert {j["params"]["language"] for j in diarize} == {"ko", "auto"}
    assert {j["params"]["transcribe_model"] for j in diarize} == {"whisper"}
    separate = [j for j in jobs if j["job_type"] == "separate"]
    assert {j["params"]["separation_type"] for j in separate} == {"speech-nonlingual", "dialogue-music-effect"}


def _completed_result_url(api, make_account) -> str:
    acc = make_account(5)
    f = upload_ok(api, acc.headers, tone_wav(0.5))
    job_id = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    return wait_job(api, acc.headers, job_id)["results"][0]["url"]


def test_tampered_or_expired_signed_url_is_refused(api, make_account, stack):
    url = _completed_result_url(api, make_account)
    assert api.get(url).status_code == 200
    parts = urlparse(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}

    def get(path=parts.path, **changes):
        return api.get(f"{path}?{urlencode({**query, **changes})}")

    bad_sig = get(signature=("0" if query["signature"][0] != "0" else "1") + query["signature"][1:])
    assert bad_sig.status_code == 403 and bad_sig.json()["error"]["code"] == "invalid_signature"
    longer = get(expires=str(int(query["expires"]) + 3600))
    assert longer.status_code == 403 and longer.json()["error"]["code"] == "invalid_signature"
    other_key = get(path=parts.path.replace("enhanced.wav", "report.json"))
    assert other_key.status_code == 403
    assert get(path="/v1/objects/silver/../../etc/passwd").status_code in (403, 404)
    assert api.get(parts.path).status_code == 422  # no signature at all

    # An expired URL, correctly signed by the same secret, is refused too.
    from services.common.storage import LocalStorage

    storage = LocalStorage(stack.root / "storage", "dev-only-signing-secret-change-me", stack.url)
    key = parts.path.removeprefix("/v1/objects/")
    expired = int(time.time()) - 1
    r = api.get(f"{parts.path}?expires={expired}&signature={storage._signature(key, expired)}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "url_expired"
    fresh = storage.signed_url(key, 60)
    assert api.get(fresh).status_code == 200
