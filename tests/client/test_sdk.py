"""The Python SDK against the running stack: the whole flow, typed errors, retries, idempotency keys.

Faults come from a real proxy in front of the real gateway (tests/client/proxy.py), not from
a mocked transport: the SDK sees the refused, dropped and lost answers a network gives.
"""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile as sf
from timbr import (
    AuthenticationError,
    Conflict,
    ConnectionFailed,
    Gone,
    InsufficientCredits,
    JobFailed,
    NotFound,
    RetryPolicy,
    ServiceUnavailable,
    Timbr,
    ValidationError,
    WebhookSignatureError,
    webhooks,
)

from tests.client.proxy import FaultyProxy
from tests.support.audio import tone_wav

FAST = RetryPolicy(max_retries=3, base_s=0.01, cap_s=0.05)


@pytest.fixture
def proxy(client_stack):
    p = FaultyProxy(client_stack.url)
    yield p
    p.close()


def noisy_tone(seconds: float = 2.0, rate: int = 24000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * np.random.default_rng(0).standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV")
    return buf.getvalue()


def test_upload_enhance_wait_download_with_progress(client_stack, new_account, tmp_path):
    acc = new_account(100)
    src = tmp_path / "tone.wav"
    src.write_bytes(noisy_tone())
    sent: list[tuple[int, int]] = []
    seen: list[tuple[str, float]] = []
    with Timbr(token=acc.token, base_url=client_stack.url) as tb:
        job = tb.enhance(src, eq_preset="vocal", on_upload=lambda done, total: sent.append((done, total)))
        assert job.status == "queued" and job.credits_reserved == 2
        job = tb.wait(job, timeout=120, on_progress=lambda j: seen.append((j.status, j.progress)))
        assert job.status == "completed" and job.viewer_url and job.viewer_url.startswith(client_stack.url)
        assert [s for s, _ in seen][-1] == "completed"
        progress = [p for _, p in seen]
        assert progress == sorted(progress) and progress[-1] == 1.0

        everything = tb.download(job, tmp_path / "results")
        assert sorted(p.name for p in everything) == ["enhanced.wav", "report.json"]
        one = tb.download(job.job_id, tmp_path / "out" / "clean.wav", name="enhanced")
        assert one == [tmp_path / "out" / "clean.wav"]
        assert one[0].read_bytes() == (tmp_path / "results" / "enhanced.wav").read_bytes()
        assert one[0].stat().st_size == job.result("enhanced.wav").size_bytes
        assert not list(tmp_path.rglob("*.part"))
        out, rate = sf.read(one[0])
        assert rate == 24000 and abs(len(out) / rate - 2.0) < 0.01

        assert tb.account().spent_credits == 2 and tb.account().reserved_credits == 0
        assert [j.job_id for j in tb.jobs()] == [job.job_id]
        with pytest.raises(Conflict) as e:
            tb.cancel(job)
        assert e.value.code == "invalid_state" and e.value.status == 409

        tb.delete_job(job)                      # results removed from storage, the job record stays
        with pytest.raises(Gone) as e:
            tb.download(job, tmp_path / "again")                # the URLs it holds answer 410
        assert e.value.code == "deleted"
        with pytest.raises(Gone):
            tb.download(job.job_id, tmp_path / "again")         # a fresh document says so too
        tb.delete_file(job.raw["file_id"])
        with pytest.raises(Gone) as e:
            tb.enhance(job.raw["file_id"])
        assert e.value.code == "deleted" and e.value.status == 410
    total = src.stat().st_size
    assert sent[-1][0] == total and all(t == total for _, t in sent)
    assert [d for d, _ in sent] == sorted(d for d, _ in sent)


def test_api_errors_are_typed(client_stack, new_account, tmp_path, cli_runs):
    acc = new_account(1)
    with Timbr(token=acc.token, base_url=client_stack.url, retry=FAST) as tb:
        with pytest.raises(NotFound) as e:
            tb.enhance("file_doesnotexist")
        assert e.value.code == "file_not_found" and e.value.request_id
        with pytest.raises(NotFound) as e:
            tb.job("job_doesnotexist")
        assert e.value.code == "job_not_found"
        with pytest.raises(ValidationError) as e:
            tb.upload(io.BytesIO(b"RIFF" + b"\x00" * 40), "broken.wav")
        assert e.value.code == "invalid_audio"
        f = tb.upload(io.BytesIO(tone_wav(2.5)), "tone.wav")
        assert f.file_id.startswith("file_") and f.duration == 2.5
        with pytest.raises(ValidationError) as e:
            tb.enhance(f, noise_reduction=5)
        assert e.value.code == "validation_error" and e.value.details[0]["field"] == "noise_reduction"
        with pytest.raises(InsufficientCredits) as e:
            tb.enhance(f)
        assert (e.value.required, e.value.available) == (3, 1)
        with pytest.raises(NotFound):                        # another account's job is not found
            tb.job(cli_runs.separate.json["job"]["job_id"])
    with Timbr(token="TBR_wrong", base_url=client_stack.url, retry=FAST) as tb, pytest.raises(AuthenticationError):
        tb.account()


def test_failed_job_raises_job_failed(client_stack, new_account):
    acc = new_account(100)
    with Timbr(token=acc.token, base_url=client_stack.url) as tb:
        f = tb.upload(io.BytesIO(tone_wav(1.0)), "tone.wav")
        mp3_at_rate_mp3_cannot_hold = {"output_format": "mp3", "sample_rate": 96000}
        job = tb.separate(f, **mp3_at_rate_mp3_cannot_hold)
        with pytest.raises(JobFailed) as e:
            tb.wait(job, timeout=60)
        assert e.value.code == "validation_error" and e.value.job.status == "failed"
        assert tb.wait(job, raise_on_failure=False).status == "failed"
        assert tb.account().reserved_credits == 0


def test_retries_on_503_429_and_dropped_connections_reuse_one_idempotency_key(proxy, new_account):
    acc = new_account(10)
    with Timbr(token=acc.token, base_url=proxy.url, retry=FAST) as tb:
        proxy.fail("POST", "/v1/upload", "503", "drop", "429")
        f = tb.upload(io.BytesIO(tone_wav(1.0)), "tone.wav")
        tries = proxy.requests("POST", "/v1/upload")
        assert len(tries) == 4 and f.duration == 1.0
        keys = {t.headers.get("idempotency-key") for t in tries}
        assert len(keys) == 1 and None not in keys

        proxy.fail("GET", "/v1/account", "drop", "503")
        assert tb.account().available_credits == 10
        assert len(proxy.requests("GET", "/v1/account")) == 3

        tb.upload(io.BytesIO(tone_wav(1.0)), "again.wav")       # a new logical call: a new key
        assert proxy.requests("POST", "/v1/upload")[-1].headers["idempotency-key"] not in keys

        with pytest.raises(ValidationError):                      # 4xx: never retried
            tb.enhance(f, target_lufs=0)
        assert len(proxy.requests("POST", "/v1/audio/enhance")) == 1

        proxy.fail("GET", "/v1/account", *["503"] * 4)
        with pytest.raises(ServiceUnavailable):                   # 1 try + 3 retries, then the error
            tb.account()
        assert len(proxy.requests("GET", "/v1/account")) == 3 + 4


def test_lost_response_is_retried_with_the_same_key(proxy, new_account):
    """The gateway creates the job but the answer is lost: the retry carries the same key, so the
    server can answer with the first job instead of reserving credits twice."""
    acc = new_account(10)
    with Timbr(token=acc.token, base_url=proxy.url, retry=FAST) as tb:
        f = tb.upload(io.BytesIO(tone_wav(1.0)), "tone.wav")
        proxy.fail("POST", "/v1/audio/enhance", "lost")
        job = tb.enhance(f)
        tries = proxy.requests("POST", "/v1/audio/enhance")
        assert len(tries) == 2 and tries[0].headers["idempotency-key"] == tries[1].headers["idempotency-key"]
        assert [j.job_id for j in tb.jobs()] == [job.job_id]
        assert tb.account().available_credits == 9


def test_unreachable_server_is_connection_failed():
    with Timbr(token="TBR_x", base_url="http://127.0.0.1:9", retry=FAST) as tb, pytest.raises(ConnectionFailed) as e:
        tb.account()
    assert "after 4 tries" in str(e.value)


def test_token_comes_from_the_environment(monkeypatch, client_stack, new_account):
    acc = new_account(7)
    monkeypatch.setenv("TIMBR_TOKEN", acc.token)
    monkeypatch.setenv("TIMBR_BASE_URL", client_stack.url)
    with Timbr() as tb:
        assert tb.account().available_credits == 7
    monkeypatch.delenv("TIMBR_TOKEN")
    with pytest.raises(ValueError, match="TIMBR_TOKEN"):
        Timbr()


@pytest.fixture
def receiver():
    """A webhook receiver on loopback that records what it is sent and answers 204."""
    got: list[tuple[dict[str, str], bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            got.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def test_a_real_webhook_delivery_verifies_with_the_sdk(client_stack, new_account, receiver):
    url, got = receiver
    acc = new_account(10)
    with Timbr(token=acc.token, base_url=client_stack.url) as tb:
        config = tb.set_webhook(url)
        assert config["url"] == url and config["secret"] == tb.webhook()["secret"]
        f = tb.upload(io.BytesIO(tone_wav(1.0)), "tone.wav")
        job = tb.separate(f, output_format="mp3", sample_rate=96000)     # fails fast: mp3 cannot hold 96 kHz
        with pytest.raises(JobFailed):
            tb.wait(job, timeout=60)
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            time.sleep(0.2)
        assert got, "no delivery within 30 s"
        headers, body = got[0]
        doc = webhooks.verify(body, headers["timbr-signature"], config["secret"])
        assert doc["job_id"] == job.job_id and doc["status"] == "failed"
        assert doc["error"]["code"] == "validation_error" and doc["viewer_url"].startswith(client_stack.url)
        with pytest.raises(WebhookSignatureError):
            webhooks.verify(body.replace(b'"failed"', b'"completed"'), headers["timbr-signature"], config["secret"])
        with pytest.raises(WebhookSignatureError):
            webhooks.verify(body, headers["timbr-signature"], tb.set_webhook(url, rotate_secret=True)["secret"])

        deliveries = tb.webhook_deliveries(job)
        assert [d["delivery_id"] for d in deliveries] == [headers["timbr-delivery-id"]]
        assert deliveries[0]["status"] == "delivered" and deliveries[0]["attempts"][0]["status_code"] == 204
        assert tb.set_webhook(None)["url"] is None
