"""The KServe ModelServer, in a subprocess, serves every registered model through tritonclient
exactly as the in-process runtime runs it.

Tolerance: outputs must match in-process outputs to ``atol=1e-5`` for float tensors and exactly
for JSON results; in practice they are bit-identical (same code, same inputs, tensors travel as
raw little-endian bytes).
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

import services.inference.models  # noqa: F401 - fills MODEL_REGISTRY
from services.inference.model_client import (
    MODEL_REGISTRY,
    InProcessModelClient,
    ModelError,
    ModelNotFound,
    parse_json_output,
)
from services.inference.remote_client import CLIENT_RETRIES
from tests.serving.support import REPO, example_requests, noisy

ATOL = 1e-5


def assert_same(name: str, got: dict, want: dict) -> None:
    assert set(got) == set(want), name
    for key, ref in want.items():
        out = got[key]
        if ref.dtype == np.object_:
            assert out.dtype == np.object_, (name, key)
            assert parse_json_output(out) == parse_json_output(ref), (name, key)
        else:
            assert out.dtype == ref.dtype and out.shape == ref.shape, (name, key, out.dtype, out.shape)
            np.testing.assert_allclose(out, ref, atol=ATOL, rtol=0, err_msg=f"{name}.{key}")


def test_all_registered_models_load(inprocess):
    _, loadable, broken = inprocess
    assert loadable, "no model loads on this machine"
    assert not broken, f"models that fail to load in-process (make models?): {broken}"


def test_health_readiness_and_model_readiness(server, remote):
    assert httpx.get(f"{server.http}/v2/health/live").json()["live"] is True
    assert httpx.get(f"{server.http}/v2/health/ready").json()["ready"] is True
    for name in server.models:
        assert httpx.get(f"{server.http}/v2/models/{name}/ready").json()["ready"] is True
        assert remote.is_ready(name)
    assert httpx.get(f"{server.http}/v2/models/no_such_model/ready").status_code == 404
    assert not remote.is_ready("no_such_model")


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_model_outputs_equal_inprocess(name, inprocess, remote, audio):
    client, loadable, broken = inprocess
    assert name in loadable, broken.get(name)
    requests = example_requests(*audio).get(name)
    assert requests, f"add example requests for new model {name!r} to tests/serving/support.py"
    for inputs, params in requests:
        want = client.infer(name, inputs, params)
        got = remote.infer(name, inputs, params)
        assert_same(name, got, want)


def test_float_parameter_reaches_the_model(inprocess, remote, audio):
    assert "speech_enhancer" in inprocess[1], inprocess[2]
    x = noisy(audio[1][: 48000 * 2])
    passthrough = remote.infer("speech_enhancer", {"audio": x}, {"atten_lim_db": 0.0})["audio"]
    np.testing.assert_array_equal(passthrough, x)  # <= 0 dB: the model returns its input
    full = remote.infer("speech_enhancer", {"audio": x})["audio"]
    limited = remote.infer("speech_enhancer", {"audio": x}, {"atten_lim_db": 6.0})["audio"]
    residual = lambda y: float(np.mean((y - x) ** 2))
    assert residual(limited) < 0.5 * residual(full)  # a 6 dB limit removes far less than no limit


def test_missing_model_raises_model_not_found_without_retry(remote):
    before = CLIENT_RETRIES.labels("no_such_model")._value.get()
    with pytest.raises(ModelNotFound, match="no_such_model"):
        remote.infer("no_such_model", {"audio": np.zeros(16000, np.float32)})
    assert CLIENT_RETRIES.labels("no_such_model")._value.get() == before
    with pytest.raises(ModelNotFound):
        remote.wait_until_ready(["no_such_model"], timeout_s=5)


def test_bad_request_fails_alone_with_the_model_message(server, remote):
    name = server.models[0]
    with pytest.raises(ModelError, match=name):
        remote.infer(name, {"audio": np.zeros((2, 3, 4), np.float32)})
    # the server carries on
    assert remote.is_ready(name)
    assert httpx.get(f"{server.http}/v2/health/ready").json()["ready"] is True


def test_http_v2_endpoint_serves_too(server, audio):
    assert "vad_silero" in server.models
    x = audio[0][:16000]
    body = {"inputs": [{"name": "audio", "shape": [x.size], "datatype": "FP32", "data": x.tolist()}]}
    r = httpx.post(f"{server.http}/v2/models/vad_silero/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    want = InProcessModelClient().infer("vad_silero", {"audio": np.asarray(body["inputs"][0]["data"],
                                                                           np.float32)})
    np.testing.assert_allclose(outputs["probs"]["data"], want["probs"], atol=ATOL)


def test_prometheus_metrics_count_requests(server, remote):
    name = server.models[0]
    text = httpx.get(f"{server.http}/metrics").text
    assert f'timbr_model_server_model_ready{{model="{name}"}} 1.0' in text
    ok = [line for line in text.splitlines() if line.startswith("timbr_model_server_requests_total")
          and 'outcome="ok"' in line]
    assert ok and sum(float(line.rsplit(" ", 1)[1]) for line in ok) >= 1
    assert "timbr_model_server_predict_seconds_bucket" in text


def test_model_metadata_comes_from_the_triton_config(server, remote):
    """The server's v2 metadata is read from triton_models/<name>/config.pbtxt: one contract."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    for name in server.models:
        meta = remote._client.get_model_metadata(name)
        cfg = text_format.Parse((REPO / "triton_models" / name / "config.pbtxt").read_text(), mc.ModelConfig())
        assert [t.name for t in meta.inputs] == [t.name for t in cfg.input], name
        assert [t.name for t in meta.outputs] == [t.name for t in cfg.output], name
        for got, want in zip(meta.outputs, cfg.output, strict=True):
            dtype = mc.DataType.Name(want.data_type).removeprefix("TYPE_")
            assert got.datatype == ("BYTES" if dtype == "STRING" else dtype)
            assert list(got.shape) == list(want.dims)
