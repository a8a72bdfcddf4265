"""The Triton model repository: every config.pbtxt parses as Triton's ModelConfig protobuf (the
message tritonclient ships), covers every registered model, and declares exactly the inputs
and outputs (names, dtypes, ranks) that the pipelines send and the models return. The
python-backend adapter is run against a small stand-in for ``triton_python_backend_utils``
(that module exists only inside Triton, which cannot run here)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import triton_to_np_dtype

import services.inference.models  # noqa: F401 - fills MODEL_REGISTRY
from services.inference.model_client import MODEL_REGISTRY, InProcessModelClient
from tests.serving.support import REPO, example_requests

REPOSITORY = REPO / "triton_models"
CONFIGS = sorted(REPOSITORY.glob("*/config.pbtxt"))


def load_config(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def np_dtype(data_type: int) -> np.dtype:
    name = mc.DataType.Name(data_type).removeprefix("TYPE_")
    return np.dtype(triton_to_np_dtype("BYTES" if name == "STRING" else name))


@pytest.fixture(scope="module")
def client():
    return InProcessModelClient()


def test_every_registered_model_has_an_entry():
    assert CONFIGS, "no config.pbtxt under triton_models/"
    names = {p.parent.name for p in CONFIGS}
    assert set(MODEL_REGISTRY) <= names, f"registered but not in triton_models/: {set(MODEL_REGISTRY) - names}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.parent.name)
def test_config_parses_and_is_well_formed(path):
    cfg = load_config(path)
    assert cfg.name == path.parent.name
    assert cfg.input or cfg.name == "whisper", "a model takes inputs"
    assert cfg.output
    assert len(cfg.instance_group) >= 1
    for group in cfg.instance_group:
        assert group.kind in (mc.ModelInstanceGroup.KIND_CPU, mc.ModelInstanceGroup.KIND_GPU,
                              mc.ModelInstanceGroup.KIND_AUTO)
    if cfg.dynamic_batching.ByteSize() or cfg.HasField("dynamic_batching"):
        assert cfg.max_batch_size > 0, "dynamic batching needs max_batch_size"
    if cfg.backend == "python":
        model_py = path.parent / "1" / "model.py"
        assert "TritonPythonModel" in model_py.read_text()
        assert cfg.name in MODEL_REGISTRY  # the adapter builds the registered class by this name
    else:
        assert cfg.platform == "onnxruntime_onnx" or cfg.backend == "onnxruntime"
    for tensor in list(cfg.input) + list(cfg.output):
        assert tensor.data_type != mc.TYPE_INVALID and len(tensor.dims) >= 1, tensor.name


@pytest.mark.parametrize("path", [p for p in CONFIGS if (p.parent / "config.cpu.pbtxt").exists()],
                         ids=lambda p: p.parent.name)
def test_cpu_stand_in_config_matches_the_production_config(path):
    """A model Triton serves on a backend the local wheel lacks is served here from
    config.cpu.pbtxt on the python backend: same name, tensors, batch size and batching."""
    prod, cpu = load_config(path), load_config(path.parent / "config.cpu.pbtxt")
    assert prod.platform == "onnxruntime_onnx" and cpu.backend == "python"
    assert (cpu.name, cpu.max_batch_size) == (prod.name, prod.max_batch_size)
    assert list(cpu.input) == list(prod.input) and list(cpu.output) == list(prod.output)
    assert cpu.dynamic_batching == prod.dynamic_batching


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_config_matches_what_clients_send_and_models_return(name, client, audio):
    cfg = load_config(REPOSITORY / name / "config.pbtxt")
    inputs = {t.name: t for t in cfg.input}
    outputs = {t.name: t for t in cfg.output}
    batch = 1 if cfg.max_batch_size > 0 else 0
    for request, params in example_requests(*audio)[name]:
        for key, array in request.items():
            assert key in inputs, f"{name}: the client sends {key!r}, not declared"
            spec = inputs[key]
            assert np.asarray(array).dtype == np_dtype(spec.data_type), (name, key)
            assert np.asarray(array).ndim == len(spec.dims) + batch, (name, key)
        missing = [k for k, t in inputs.items() if not t.optional and k not in request]
        assert not missing, f"{name}: required inputs not sent: {missing}"
        result = client.infer(name, request, params)
        assert set(result) == set(outputs), (name, set(result), set(outputs))
        for key, array in result.items():
            assert array.dtype == np_dtype(outputs[key].data_type), (name, key, array.dtype)
            assert array.ndim == len(outputs[key].dims) + batch, (name, key, array.shape)


# ------------------------------------------------------------------ python-backend adapter
class _Tensor:
    def __init__(self, name, array):
        self._name, self._array = name, np.asarray(array)

    def name(self):
        return self._name

    def as_numpy(self):
        return self._array


class _Request:
    def __init__(self, inputs, params):
        self._inputs = [_Tensor(k, v) for k, v in inputs.items()]
        self._params = json.dumps(params or {})

    def inputs(self):
        return self._inputs

    def parameters(self):
        return self._params


class _Response:
    def __init__(self, output_tensors, error=None):
        self.output_tensors, self.error = output_tensors, error


class _TritonError(Exception):
    pass


@pytest.fixture
def pb_utils(monkeypatch):
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = _Tensor
    module.InferenceResponse = _Response
    module.TritonError = _TritonError
    module.triton_string_to_numpy = lambda s: np.dtype(object) if s == "TYPE_STRING" else np.dtype(
        triton_to_np_dtype(s.removeprefix("TYPE_")))
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", module)
    return module


@pytest.mark.parametrize("name", ["speech_enhancer", "vad_silero", "whisper"])
def test_python_backend_adapter_runs_the_same_model(name, pb_utils, client, audio):
    from services.inference.model_server.triton_python import TimbrTritonModel

    cfg = load_config(REPOSITORY / name / "config.pbtxt")
    model = TimbrTritonModel()
    model.initialize({"model_config": json_format.MessageToJson(cfg, preserving_proto_field_name=True),
                      "model_instance_kind": "CPU", "model_instance_device_id": "0"})
    request, params = example_requests(*audio)[name][0]
    bad = {"audio": np.zeros((2, 2, 2), np.float32)}
    ok, failed = model.execute([_Request(request, params), _Request(bad, None)])
    assert ok.error is None
    got = {t.name(): t.as_numpy() for t in ok.output_tensors}
    want = client.infer(name, request, params)
    assert set(got) == set(want)
    for key in want:
        if want[key].dtype == np.object_:
            assert got[key].reshape(-1)[0] == want[key].reshape(-1)[0]
        else:
            np.testing.assert_allclose(got[key], want[key], atol=1e-5)
    assert isinstance(failed.error, _TritonError) and not failed.output_tensors  # fails alone
    model.finalize()


def test_speaker_encoder_onnx_matches_config_and_the_model(client, audio):
    """The batched ONNX entry (after `make models`) takes what its config says and gives the
    same embedding as ``speaker_embedding`` once L2-normalised."""
    onnx_path = REPOSITORY / "speaker_encoder" / "1" / "model.onnx"
    assert onnx_path.exists(), "`make install` (make models, mk/serving.mk) builds it"
    import onnxruntime as ort

    from services.inference.models.speaker_embedding import fbank

    cfg = load_config(REPOSITORY / "speaker_encoder" / "config.pbtxt")
    assert cfg.max_batch_size > 0 and cfg.HasField("dynamic_batching")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == cfg.input[0].name and inp.shape[-1] == cfg.input[0].dims[-1] == 80
    assert out.name == cfg.output[0].name and out.shape[-1] == cfg.output[0].dims[-1] == 192
    s16 = audio[0]
    windows = np.array([[0.0, 1.5], [1.0, 2.5]], np.float32)
    want = client.infer("speaker_embedding", {"audio": s16, "windows": windows})["embeddings"]
    feats = np.stack([fbank(s16[int(a * 16000):int(b * 16000)]) for a, b in windows])
    emb = session.run(None, {"fbank": feats})[0]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.testing.assert_allclose(emb, want, atol=1e-4)
