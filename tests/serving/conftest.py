"""Fixtures shared by the serving tests: one model server subprocess per backend for the session.

``server`` is parametrised: every test that takes it runs against the KServe ModelServer and
against a real Triton Inference Server (tools/triton.py, unpacked by ``make triton``) serving
``triton_models/``.
"""

from __future__ import annotations

import pytest

import services.inference.models  # noqa: F401 - fills MODEL_REGISTRY
from services.inference.model_client import MODEL_REGISTRY, InProcessModelClient
from services.inference.remote_client import TritonModelClient
from tests.serving.support import BACKENDS, speech, start_server


@pytest.fixture(scope="session")
def audio():
    return speech(16000), speech(48000)         # espeak-ng comes with `make install`


@pytest.fixture(scope="session")
def inprocess():
    """Every registered model that loads on this machine, in this process."""
    client = InProcessModelClient()
    loadable, broken = [], {}
    for name in sorted(MODEL_REGISTRY):
        try:
            client.get(name)
            loadable.append(name)
        except Exception as exc:  # noqa: BLE001 - reported by the test that needs it
            broken[name] = f"{type(exc).__name__}: {exc}"
    return client, loadable, broken


@pytest.fixture(scope="session", params=BACKENDS)
def server(request, inprocess, tmp_path_factory):
    _, loadable, _ = inprocess
    # Triton also serves the ONNX-only entry (speaker_encoder, batched fbank in), which KServe does not.
    models = loadable + ["speaker_encoder"] if request.param == "triton" else loadable
    srv = start_server(request.param, models, tmp_path_factory.mktemp(f"{request.param}-server"))
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def remote(server):
    client = TritonModelClient(server.url, timeout_s=120, retries=2, backoff_s=0.1)
    client.wait_until_ready(server.models, timeout_s=30)
    yield client
    client.close()
