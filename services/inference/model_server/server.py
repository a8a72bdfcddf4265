"""A KServe ModelServer hosting the registered ``Model`` classes on CPU.

Every model in ``services.inference.models`` (or the ``TIMBR_MODEL_SERVER_MODELS`` subset) is
wrapped by ``ServedModel``, a thin ``kserve.Model`` adapter: v2 tensors in, ``Model.predict``
on a worker thread, v2 tensors out. Nothing is model-specific here, so a model that lands in
the registry is served without new code.

- gRPC (``inference.GRPCInferenceService``, the protocol Triton speaks) on ``grpc_port``;
  HTTP v2 REST, ``/v2/health/live``, ``/v2/health/ready`` and ``/metrics`` on ``http_port``.
- Liveness answers at once; models load in background threads and each model's readiness
  (and the server's, which needs all of them) turns true when it has loaded. Requests to a
  model still loading get UNAVAILABLE, which clients retry.
- Errors: a missing model is NOT_FOUND (KServe), a failing request INVALID_ARGUMENT with the
  model's message (one request fails, the server carries on).

Never import this module from worker code: ``kserve`` and ``tritonclient.grpc`` cannot share
a process (duplicate protobuf symbols).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import text_format
from google.protobuf.unknown_fields import UnknownFieldSet
from kserve import Model as KServeModel
from kserve import ModelServer
from kserve import model_server as kserve_model_server
from kserve.errors import InferenceError, InvalidInput, ModelNotFound, ModelNotReady
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc.grpc_predict_v2_pb2 import InferParameter
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.utils.numpy_codec import from_np_dtype

from services.inference.model_client import MODEL_REGISTRY, Model, ModelError, register_model
from services.inference.model_server import metrics
from services.inference.model_server.settings import ModelServerSettings

log = logging.getLogger("timbr.model_server")


def request_parameters(parameters: Any) -> dict[str, Any]:
    """v2 request parameters (gRPC ``InferParameter`` map or REST dict) as plain Python values.

    KServe's ``InferParameter`` has only bool/int64/string, while Triton's (and tritonclient,
    which sends Python floats as ``double_param = 4``) also has ``double_param`` and
    ``uint64_param = 5``. Those arrive as unknown fields here; they are decoded so float
    parameters (e.g. ``atten_lim_db``) reach the model exactly as they do in-process.
    """
    out: dict[str, Any] = {}
    for key, value in (parameters or {}).items():
        if isinstance(value, InferParameter):
            choice = value.WhichOneof("parameter_choice")
            out[key] = getattr(value, choice) if choice else _unknown_parameter(value)
        else:
            out[key] = value
    return out


def _unknown_parameter(value: InferParameter) -> Any:
    for field in UnknownFieldSet(value):
        if field.field_number == 4 and field.wire_type == 1:  # double_param (fixed64)
            return struct.unpack("<d", struct.pack("<Q", field.data))[0]
        if field.field_number == 5 and field.wire_type == 0:  # uint64_param (varint)
            return int(field.data)
    return None


TRITON_REPOSITORY = Path(__file__).resolve().parents[3] / "triton_models"


@lru_cache(maxsize=1)
def _model_config_module():
    """Triton's ModelConfig message, loaded from tritonclient's generated file on its own:
    importing ``tritonclient.grpc`` here would clash with kserve's protobuf symbols, but
    ``model_config.proto`` shares none of them."""
    import tritonclient

    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("timbr_triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _signature(name: str, repository: Path) -> tuple[list[dict], list[dict], frozenset[str]]:
    path = repository / name / "config.pbtxt"
    if not path.exists():
        return [], [], frozenset()
    try:
        mc = _model_config_module()
        cfg = text_format.Parse(path.read_text(), mc.ModelConfig())
    except Exception:
        log.warning("cannot read %s", path, exc_info=True)
        return [], [], frozenset()

    def tensors(items) -> list[dict]:
        out = []
        for t in items:
            dtype = mc.DataType.Name(t.data_type).removeprefix("TYPE_")
            out.append({"name": t.name, "datatype": "BYTES" if dtype == "STRING" else dtype,
                        "shape": ([-1] if cfg.max_batch_size > 0 else []) + list(t.dims)})
        return out

    return tensors(cfg.input), tensors(cfg.output), frozenset(t.name for t in cfg.input if t.optional)


def tensor_signature(name: str, repository: Path = TRITON_REPOSITORY) -> tuple[list[dict], list[dict]]:
    """v2 metadata (inputs, outputs) of a model, from its ``config.pbtxt``: one contract for
    Triton and this server. Empty when the model has no entry or tritonclient is missing."""
    inputs, outputs, _ = _signature(name, repository)
    return inputs, outputs


def check_inputs(model: str, given: list[tuple[str, str, list[int]]],
                 repository: Path = TRITON_REPOSITORY) -> None:
    """Refuse what Triton refuses for this model's ``config.pbtxt``: an unknown or missing
    (non-optional) input, another datatype (no FP64 for FP32), another rank or a fixed dimension
    of another size. ``given``: (name, datatype, shape) of each request input. A model without a
    config entry is not checked."""
    declared, _, optional = _signature(model, repository)
    if not declared:
        return
    by_name = {t["name"]: t for t in declared}
    names = [name for name, _, _ in given]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InvalidInput(f"unexpected inference input {unknown[0]!r} for model {model!r}; "
                           f"it takes {sorted(by_name)}")
    missing = sorted(set(by_name) - set(names) - optional)
    if missing:
        raise InvalidInput(f"expected {len(by_name) - len(optional)} inputs but got {len(names)} inputs for "
                           f"model {model!r}; missing required input(s) {missing}")
    for name, datatype, shape in given:
        want = by_name[name]
        if datatype != want["datatype"]:
            raise InvalidInput(f"inference input {name!r} data-type is {datatype!r}, but model {model!r} "
                               f"expects {want['datatype']!r}")
        dims = want["shape"]
        if len(shape) != len(dims) or any(d != -1 and d != s for d, s in zip(dims, shape, strict=True)):
            raise InvalidInput(f"unexpected shape for input {name!r} for model {model!r}: "
                               f"expected {dims}, got {list(shape)}")


def build_model(name: str) -> Model:
    target = MODEL_REGISTRY[name]
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)()


class ServedModel(KServeModel):
    """One registered ``Model`` behind KServe's v2 data plane."""

    def __init__(self, name: str, model: Model, max_concurrency: int = 1) -> None:
        super().__init__(name)
        self.model = model
        self._executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix=f"model-{name}")
        self.load_error: str | None = None
        self.load_seconds = 0.0

    def get_input_types(self) -> list[dict]:
        return tensor_signature(self.name)[0]

    def get_output_types(self) -> list[dict]:
        return tensor_signature(self.name)[1]

    def load(self) -> bool:
        start = time.perf_counter()
        self.model.load()
        self.model.ready = True
        self.load_seconds = time.perf_counter() - start
        metrics.LOAD_SECONDS.labels(self.name).set(self.load_seconds)
        metrics.MODEL_READY.labels(self.name).set(1)
        self.ready = True
        return True

    def _run(self, inputs: dict[str, np.ndarray], params: dict[str, Any], queued_at: float):
        metrics.QUEUE_SECONDS.labels(self.name).observe(time.perf_counter() - queued_at)
        with metrics.PREDICT_SECONDS.labels(self.name).time():
            return self.model.predict(inputs, params)

    async def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None, response_headers=None
    ) -> InferResponse:
        if not isinstance(payload, InferRequest):
            raise InvalidInput("this server speaks the v2 protocol only")
        try:
            check_inputs(self.name, [(t.name, t.datatype, list(t.shape)) for t in payload.inputs])
        except InvalidInput:
            metrics.REQUESTS.labels(self.name, "invalid").inc()
            raise
        try:
            inputs = {}
            for tensor in payload.inputs:
                array = tensor.as_numpy()
                # Raw gRPC buffers decode read-only; models may work in place.
                inputs[tensor.name] = array if array.flags.writeable else array.copy()
        except Exception as exc:
            metrics.REQUESTS.labels(self.name, "invalid").inc()
            raise InvalidInput(f"bad input tensor: {exc}") from exc
        params = request_parameters(payload.parameters)
        loop = asyncio.get_running_loop()
        metrics.INFLIGHT.labels(self.name).inc()
        try:
            outputs = await loop.run_in_executor(
                self._executor, self._run, inputs, params, time.perf_counter()
            )
        except ModelError as exc:
            metrics.REQUESTS.labels(self.name, "error").inc()
            raise InferenceError(str(exc)) from exc
        except Exception as exc:
            metrics.REQUESTS.labels(self.name, "error").inc()
            log.exception("model %s failed", self.name)
            raise InferenceError(f"model {self.name!r} failed: {exc}") from exc
        finally:
            metrics.INFLIGHT.labels(self.name).dec()
        metrics.REQUESTS.labels(self.name, "ok").inc()
        binary = payload.from_grpc or payload.use_binary_outputs
        infer_outputs = []
        for out_name, array in outputs.items():
            array = np.asarray(array)
            if array.dtype.kind in "SU":
                array = np.array([s.encode() if isinstance(s, str) else s for s in array.flat],
                                 dtype=np.object_).reshape(array.shape)
            datatype = from_np_dtype(array.dtype)
            if datatype is None:
                raise InferenceError(f"model {self.name!r} returned unsupported dtype {array.dtype}")
            out = InferOutput(name=out_name, shape=list(array.shape), datatype=datatype)
            out.set_data_from_numpy(np.ascontiguousarray(array), binary_data=binary)
            infer_outputs.append(out)
        return InferResponse(
            response_id=payload.id or "",
            model_name=self.name,
            infer_outputs=infer_outputs,
            use_binary_outputs=binary,
        )

    def stop(self) -> None:
        super().stop()
        self._executor.shutdown(wait=False, cancel_futures=True)


class LoadingModel(ModelNotReady):
    """``ModelNotReady`` with the ``reason`` KServe's gRPC interceptor reads (its own lacks it)."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(name, detail)
        self.reason = str(self)


class AllModelsDataPlane(DataPlane):
    """Readiness that means loaded.

    KServe's default server readiness is always true, and its ``get_model`` loads a model that
    is not ready inside the event loop (blocking every request, racing our loader thread).
    Here the server is ready when every hosted model is, and a request to a model still
    loading is refused with ``ModelNotReady`` (gRPC UNAVAILABLE, HTTP 503), which clients retry.
    """

    async def get_model(self, name: str):
        model = self._model_registry.get_model(name)
        if model is None:
            raise ModelNotFound(name)
        if not model.ready:
            load_error = getattr(model, "load_error", None)
            raise LoadingModel(name, f"failed to load: {load_error}" if load_error else "still loading")
        return model

    async def ready(self) -> bool:
        models = self._model_registry.get_models()
        return bool(models) and all(m.ready for m in models.values())

    def metadata(self) -> dict:
        """KServe advertises ``model_repository_extension``; models here are fixed at start-up
        (no load/unload), so no extension is claimed."""
        return {**super().metadata(), "extensions": []}


# One load at a time: two loads importing the same package at once can trip CPython's import
# locks (seen: whisper and vad_silero both importing faster_whisper -> _DeadlockError).
_LOAD_LOCK = threading.Lock()


def _load_in_background(served: ServedModel, exit_on_failure: bool) -> threading.Thread:
    def run() -> None:
        try:
            with _LOAD_LOCK:
                served.load()
            log.info("model %s ready (%.1f s)", served.name, served.load_seconds)
        except Exception as exc:  # a model that cannot load is fatal for this process
            served.load_error = str(exc)
            log.exception("model %s failed to load", served.name)
            if exit_on_failure:
                os._exit(3)

    thread = threading.Thread(target=run, name=f"load-{served.name}", daemon=True)
    thread.start()
    return thread


def build_server(settings: ModelServerSettings) -> tuple[ModelServer, list[ServedModel]]:
    import services.inference.models  # noqa: F401 - fills MODEL_REGISTRY

    for name, target in settings.extra.items():
        register_model(name, target)
    names = settings.model_names(list(MODEL_REGISTRY))
    # KServe reads its gRPC limits from its module-level argparse namespace.
    limit = settings.grpc_max_message_mb * 1024 * 1024
    kserve_model_server.args.grpc_max_send_message_length = limit
    kserve_model_server.args.grpc_max_receive_message_length = limit
    server = ModelServer(
        http_port=settings.http_port,
        grpc_port=settings.grpc_port,
        max_threads=settings.grpc_threads,
        enable_latency_logging=False,
        grace_period=5,
    )
    server.dataplane = AllModelsDataPlane(model_registry=server.registered_models)
    served = []
    for name in names:
        model = ServedModel(name, build_model(name), settings.max_concurrency)
        server.register_model(model)  # registered before it is ready: readiness says when
        metrics.MODEL_READY.labels(name).set(0)
        served.append(model)
    return server, served


def main() -> None:
    settings = ModelServerSettings()
    if settings.omp_wait_policy:  # before any model library starts its OpenMP runtime
        os.environ.setdefault("OMP_WAIT_POLICY", settings.omp_wait_policy)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server, served = build_server(settings)
    log.info("serving %s on grpc :%d http :%d", [m.name for m in served], settings.grpc_port,
             settings.http_port)
    for model in served:
        _load_in_background(model, settings.exit_on_load_failure)
    server.start([])
