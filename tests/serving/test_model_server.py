"""The KServe ModelServer and a real Triton Inference Server, each in a subprocess, serve every
registered model through tritonclient exactly as the in-process runtime runs it (``server`` is
parametrised over both backends in conftest.py).

Tolerance: outputs must match in-process outputs to ``atol=1e-5`` for float tensors and exactly
for JSON results; in practice they are bit-identical (same code, same inputs, tensors travel as
raw little-endian bytes). Whisper's JSON is the exception (``whisper_close``): under Triton it runs
in an environment with numpy < 2, and on some CPUs (AVX-512 with AMX, 2026-12-05) a last-bit
difference in its log-mel features moves its probabilities by a few thousandths and, where two
words are nearly tied, a word (" A" for " The"): the languages must be the same, probabilities
within 0.05, and a transcript's words 90 % the same.
"""

from __future__ import annotations

import difflib
import re

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
from tests.serving.support import REPO, close, example_requests, noisy

ATOL = 1e-5


def whisper_close(got, want) -> bool:
    """Whisper's JSON through Triton against in-process (module docstring)."""
    if not (isinstance(want, dict) and "segments" in want):
        return close(got, want, 0.05)
    words = [" ".join(seg["text"] for seg in r["segments"]).split() for r in (got, want)]
    same = difflib.SequenceMatcher(a=words[0], b=words[1], autojunk=False).ratio()
    return got["language"] == want["language"] and same >= 0.9


def assert_same(name: str, got: dict, want: dict) -> None:
    assert set(got) == set(want), name
    for key, ref in want.items():
        out = got[key]
        if ref.dtype == np.object_:
            assert out.dtype == np.object_, (name, key)
            got_json, want_json = parse_json_output(out), parse_json_output(ref)
            same = whisper_close(got_json, want_json) if name == "whisper" else got_json == want_json
            assert same, (name, key, got_json, want_json)
        else:
            assert out.dtype == ref.dtype and out.shape == ref.shape, (name, key, out.dtype, out.shape)
            np.testing.assert_allclose(out, ref, atol=ATOL, rtol=0, err_msg=f"{name}.{key}")


def test_all_registered_models_load(inprocess):
    _, loadable, broken = inprocess
    assert loadable, "no model loads on this machine"
    assert not broken, f"models that fail to load in-process (make models?): {broken}"


def test_health_readiness_and_model_readiness(server, remote):
    # v2 health answers with the status code (Triton sends no body; KServe adds a JSON one)
    assert httpx.get(f"{server.http}/v2/health/live").status_code == 200
    assert httpx.get(f"{server.http}/v2/health/ready").status_code == 200
    for name in server.models:
        assert httpx.get(f"{server.http}/v2/models/{name}/ready").status_code == 200
        assert remote.is_ready(name)
    assert httpx.get(f"{server.http}/v2/models/no_such_model/ready").status_code in (400, 404)
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
    assert httpx.get(f"{server.http}/v2/health/ready").status_code == 200


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
    if hasattr(server, "metrics"):  # Triton: its own nv_inference_* families on the metrics port
        remote.infer("vad_webrtc", {"audio": np.zeros(16000, np.float32)})
        text = httpx.get(server.metrics).text
        ok = [line for line in text.splitlines()
              if line.startswith('nv_inference_request_success{model="vad_webrtc"')]
        assert ok and float(ok[0].rsplit(" ", 1)[1]) >= 1, text[:2000]
        assert 'nv_inference_request_duration_us{model="vad_webrtc"' in text
        # every Triton family the Grafana dashboard queries is one this Triton exports
        dashboard = (REPO / "deploy/helm/timbr/dashboards/timbr.json").read_text()
        queried = set(re.findall(r"nv_inference_[a-z_]+", dashboard))
        assert queried and all(f"# TYPE {family} " in text for family in queried), queried
        return
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
        batch = [-1] if cfg.max_batch_size > 0 else []  # a batching model's tensors gain a batch dimension
        assert [t.name for t in meta.inputs] == [t.name for t in cfg.input], name
        assert [t.name for t in meta.outputs] == [t.name for t in cfg.output], name
        for got, want in zip([*meta.inputs, *meta.outputs], [*cfg.input, *cfg.output], strict=True):
            dtype = mc.DataType.Name(want.data_type).removeprefix("TYPE_")
            assert got.datatype == ("BYTES" if dtype == "STRING" else dtype), (name, got.name)
            assert list(got.shape) == batch + list(want.dims), (name, got.name)


@pytest.mark.parametrize("server", ["triton"], indirect=True)
def test_triton_batches_concurrent_speaker_encoder_requests(server, remote, audio):
    """Triton's dynamic batcher hands concurrent same-shape requests to one execution (the
    batched speaker encoder, a Triton-only entry); each caller gets its own rows, equal to a lone request."""
    from concurrent.futures import ThreadPoolExecutor

    from services.inference.models.speaker_embedding import fbank

    feats = [fbank(audio[0][i * 8000:i * 8000 + 24000])[None] for i in range(8)]
    alone = [remote.infer("speaker_encoder", {"fbank": f})["embedding"] for f in feats]
    before = _triton_counter(server, "nv_inference_exec_count")
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda f: remote.infer("speaker_encoder", {"fbank": f})["embedding"], feats))
    executions = _triton_counter(server, "nv_inference_exec_count") - before
    for got, want in zip(together, alone, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)
    assert executions < len(feats), f"{executions} executions for {len(feats)} requests: no batching"


def _triton_counter(server, family: str, model: str = "speaker_encoder") -> float:
    text = httpx.get(server.metrics).text
    line = next(x for x in text.splitlines() if x.startswith(f'{family}{{model="{model}"'))
    return float(line.rsplit(" ", 1)[1])
