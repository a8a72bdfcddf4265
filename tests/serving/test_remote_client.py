"""TritonModelClient behaviour around an unreliable server: start-up checks, retries on
UNAVAILABLE with backoff, a clean error when the server stays down, and the factory."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import services.inference.models  # noqa: F401 - fills MODEL_REGISTRY
from services.inference.config import ModelBackendSettings, WorkerSettings
from services.inference.model_client import InProcessModelClient, ModelError
from services.inference.remote_client import (
    CLIENT_REQUESTS,
    CLIENT_RETRIES,
    ModelServerUnavailable,
    TritonModelClient,
    make_model_client,
)
from tests.serving.support import ModelServerProcess, free_port

MODEL = "vad_webrtc"  # loads in milliseconds, so the server's start-up is all import time


def retries(model: str = MODEL) -> float:
    return CLIENT_RETRIES.labels(model)._value.get()


def test_server_down_raises_unavailable_after_bounded_retries():
    client = TritonModelClient(f"127.0.0.1:{free_port()}", retries=3, backoff_s=0.05, max_backoff_s=0.1)
    before, failed = retries(), CLIENT_REQUESTS.labels(MODEL, "remote", "unavailable")._value.get()
    start = time.monotonic()
    with pytest.raises(ModelServerUnavailable, match="after 4 attempts"):
        client.infer(MODEL, {"audio": np.zeros(16000, np.float32)})
    assert time.monotonic() - start < 5
    assert retries() - before == 3
    assert CLIENT_REQUESTS.labels(MODEL, "remote", "unavailable")._value.get() == failed + 1
    assert isinstance(ModelServerUnavailable("x"), ModelError)  # the runtime's retry path
    client.close()


def test_wait_until_ready_times_out_cleanly():
    client = TritonModelClient(f"127.0.0.1:{free_port()}")
    start = time.monotonic()
    with pytest.raises(ModelServerUnavailable, match="not ready after"):
        client.wait_until_ready([MODEL], timeout_s=1.0)
    assert time.monotonic() - start < 4
    client.close()


def test_request_waits_out_a_server_that_starts_late_and_restarts(tmp_path):
    """A request sent while the server is down succeeds once it comes up (retries), and the
    same client keeps working across a server restart on the same port."""
    srv = ModelServerProcess([MODEL], tmp_path / "server.log")
    client = TritonModelClient(srv.url, retries=240, backoff_s=0.2, max_backoff_s=0.5)
    x = (0.3 * np.sin(np.arange(32000) * 0.05)).astype(np.float32)
    want = InProcessModelClient().infer(MODEL, {"audio": x})
    result: dict = {}

    def call():
        try:
            result["out"] = client.infer(MODEL, {"audio": x})
        except Exception as exc:  # noqa: BLE001 - asserted below
            result["error"] = exc

    before = retries()
    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive()  # still retrying: nothing listens yet
    srv.start()
    try:
        thread.join(timeout=120)
        assert "error" not in result, result.get("error")
        np.testing.assert_array_equal(result["out"]["probs"], want["probs"])
        assert retries() > before

        srv.stop()  # restart: the channel reconnects, requests in between are retried
        with pytest.raises(ModelServerUnavailable):
            TritonModelClient(srv.url, retries=1, backoff_s=0.05).infer(MODEL, {"audio": x})
        srv.start()
        out = client.infer(MODEL, {"audio": x})
        assert out["probs"].shape == want["probs"].shape
    finally:
        srv.stop()
        client.close()


def test_reserved_and_unsupported_parameters_are_refused_before_sending():
    client = TritonModelClient(f"127.0.0.1:{free_port()}", retries=0)
    with pytest.raises(ModelError, match="reserved"):
        client.infer(MODEL, {"audio": np.zeros(10, np.float32)}, {"priority": 1})
    with pytest.raises(ModelError, match="not str/int/float/bool"):
        client.infer(MODEL, {"audio": np.zeros(10, np.float32)}, {"x": [1, 2]})
    client.close()


def test_factory_chooses_backend_from_settings(monkeypatch):
    monkeypatch.delenv("TIMBR_MODEL_BACKEND", raising=False)
    assert isinstance(make_model_client(ModelBackendSettings()), InProcessModelClient)

    url = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("TIMBR_MODEL_READY_TIMEOUT_S", "0.5")
    monkeypatch.setenv("TIMBR_WORKER_JOB_TYPES", "enhance")
    start = time.monotonic()
    with pytest.raises(ModelServerUnavailable):  # the worker's own settings carry the backend's
        make_model_client(WorkerSettings(model_backend="remote", model_url=url))
    assert time.monotonic() - start < 4

    monkeypatch.setenv("TIMBR_MODEL_READY_TIMEOUT_S", "0")  # no start-up wait: built lazily
    client = make_model_client(ModelBackendSettings(model_backend="remote", model_url=url))
    assert isinstance(client, TritonModelClient) and client.url == url
    client.close()


def test_live_at_once_ready_when_loaded_and_requests_wait_for_the_model(tmp_path):
    import httpx

    srv = ModelServerProcess(["slow_gain"], tmp_path / "server.log", TEST_LOAD_S="4",
                             TIMBR_MODEL_SERVER_EXTRA_MODELS="slow_gain=tests.serving.models:SlowLoadingGain")
    srv.start()
    client = TritonModelClient(srv.url, retries=200, backoff_s=0.1, max_backoff_s=0.25)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the process answers liveness before the model loads
            try:
                if httpx.get(f"{srv.http}/v2/health/live", timeout=1).json().get("live"):
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        # not ready yet: HTTP 503 (what a Kubernetes readiness probe needs), gRPC says false
        assert httpx.get(f"{srv.http}/v2/health/ready").status_code == 503
        assert httpx.get(f"{srv.http}/v2/models/slow_gain/ready").status_code == 503
        assert not client.is_ready("slow_gain")
        before = retries("slow_gain")
        out = client.infer("slow_gain", {"audio": np.ones(8, np.float32)})  # UNAVAILABLE until loaded
        np.testing.assert_array_equal(out["audio"], np.full(8, 0.5, np.float32))
        assert retries("slow_gain") > before
        assert httpx.get(f"{srv.http}/v2/health/ready").json()["ready"] is True
    finally:
        srv.stop()
        client.close()


def test_server_exits_when_a_model_cannot_load(tmp_path):
    srv = ModelServerProcess(["broken"], tmp_path / "server.log",
                             TIMBR_MODEL_SERVER_EXTRA_MODELS="broken=tests.serving.models:BrokenLoad")
    srv.start()
    try:
        assert srv.proc.wait(timeout=120) == 3
        assert "weights are missing" in srv.tail()
    finally:
        srv.stop()
