"""The KServe ModelServer holds the models' declared inputs (triton_models/*/config.pbtxt) as
Triton does: the same requests, sent to both over the v2 HTTP protocol, are refused by both
(FP64 for FP32, a missing or unknown input, another rank) and accepted by both when right."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.serving.support import BACKENDS, start_server

MODELS = ["vad_webrtc", "speaker_embedding"]  # one input; two required inputs


@pytest.fixture(scope="module", params=BACKENDS)
def contract_server(request, tmp_path_factory):
    srv = start_server(request.param, MODELS, tmp_path_factory.mktemp(f"contract-{request.param}"))
    try:
        yield request.param, srv.wait_ready()
    finally:
        srv.stop()


def _infer(srv, model: str, inputs: list[dict]) -> httpx.Response:
    return httpx.post(f"{srv.http}/v2/models/{model}/infer", json={"inputs": inputs}, timeout=60)


def _tensor(name: str, array: np.ndarray, datatype: str) -> dict:
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.ravel().tolist()}


AUDIO = (0.1 * np.sin(np.arange(16000) / 8.0)).astype(np.float32)
WINDOWS = np.array([[0.0, 0.5], [0.25, 0.75]], np.float32)


def test_well_formed_requests_pass(contract_server):
    _, srv = contract_server
    assert _infer(srv, "vad_webrtc", [_tensor("audio", AUDIO, "FP32")]).status_code == 200
    r = _infer(srv, "speaker_embedding", [_tensor("audio", AUDIO, "FP32"), _tensor("windows", WINDOWS, "FP32")])
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("case", ["fp64_for_fp32", "missing_input", "unknown_input", "wrong_rank",
                                  "wrong_fixed_dim"])
def test_what_triton_refuses_is_refused(contract_server, case):
    backend, srv = contract_server
    audio = _tensor("audio", AUDIO, "FP32")
    model, inputs, words = {
        "fp64_for_fp32": ("vad_webrtc", [_tensor("audio", AUDIO.astype(np.float64), "FP64")], "data-type"),
        "missing_input": ("speaker_embedding", [audio], "input"),
        "unknown_input": ("vad_webrtc", [audio, _tensor("extra", AUDIO, "FP32")], "input"),
        "wrong_rank": ("vad_webrtc", [_tensor("audio", AUDIO.reshape(2, -1), "FP32")], "shape"),
        "wrong_fixed_dim": ("speaker_embedding", [audio, _tensor("windows", np.zeros((2, 3), np.float32), "FP32")],
                            "shape"),
    }[case]
    r = _infer(srv, model, inputs)
    assert r.status_code == 400, (backend, r.status_code, r.text)
    assert words in r.text.lower(), (backend, r.text)


def test_server_metadata_claims_no_repository_extension(contract_server):
    backend, srv = contract_server
    meta = httpx.get(f"{srv.http}/v2", timeout=10).json()
    if backend == "kserve":  # models are fixed at start-up: no load/unload endpoints
        assert meta["extensions"] == []
        assert httpx.post(f"{srv.http}/v2/repository/index", timeout=10).status_code in (404, 405)
