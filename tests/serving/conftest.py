"""Fixtures shared by the serving tests: one KServe ModelServer subprocess for the session."""

from __future__ import annotations

import pytest

import services.inference.models  # noqa: F401 - fills MODEL_REGISTRY
from services.inference.model_client import MODEL_REGISTRY, InProcessModelClient
from services.inference.remote_client import TritonModelClient
from tests.serving.support import ModelServerProcess, speech


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


@pytest.fixture(scope="session")
def server(inprocess, tmp_path_factory):
    _, loadable, _ = inprocess
    srv = ModelServerProcess(loadable, tmp_path_factory.mktemp("model-server") / "server.log").start()
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
