"""Models over the network: a ``ModelClient`` on ``tritonclient.grpc``, and the factory.

``TritonModelClient`` speaks the KServe v2 / Open Inference Protocol over gRPC (service
``inference.GRPCInferenceService``), so the same client reaches Triton on GPU nodes and the
KServe ModelServer on CPU (``python -m services.inference.model_server``). Pipelines do not
know which: they call ``ModelClient.infer`` and get the same numpy tensors back.

Guarantees:

- Start-up: ``wait_until_ready`` polls server liveness/readiness and the readiness of the
  models this worker needs, until a deadline; ``make_model_client`` calls it.
- UNAVAILABLE (server down, restarting, or a model still loading) is retried with capped
  exponential backoff and jitter; when it stays down, ``ModelServerUnavailable`` (a
  ``ModelError``) is raised and the worker runtime retries or fails the job.
- A model the server does not know raises ``ModelNotFound`` at once (never retried).
- Other server errors (bad input, a model failing) raise ``ModelError`` with the server's
  message; a request past ``timeout_s`` raises ``ModelError`` too.
- Metrics per model: latency histogram, requests by outcome, retries.

Never import ``kserve`` from here or from anything the worker imports (duplicate protobuf
symbols with ``tritonclient.grpc``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from prometheus_client import Counter, Histogram

from services.inference.config import ModelBackendSettings
from services.inference.errors import ModelError, ModelNotFound, ModelUnavailable
from services.inference.model_client import InProcessModelClient, ModelClient, Scalar, Tensors

log = logging.getLogger("timbr.model_client")

CLIENT_SECONDS = Histogram(
    "timbr_model_client_request_seconds",
    "Model request latency seen by the client, retries included",
    ["model", "backend"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
CLIENT_REQUESTS = Counter(
    "timbr_model_client_requests_total", "Model requests by outcome", ["model", "backend", "outcome"]
)
CLIENT_RETRIES = Counter("timbr_model_client_retries_total", "Retries after UNAVAILABLE", ["model"])

# Request parameters that tritonclient reserves for itself.
_RESERVED_PARAMETERS = {"sequence_id", "sequence_start", "sequence_end", "priority", "binary_data_output"}


class ModelServerUnavailable(ModelUnavailable):
    """The model server could not be reached (or the model was not ready) within the retries."""


def _status(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    value = status() if callable(status) else status
    return str(value or "").rsplit(".", 1)[-1]  # "StatusCode.UNAVAILABLE" -> "UNAVAILABLE"


def _message(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    return str(message() if callable(message) else exc)


def _is_unknown_model(status: str, message: str) -> bool:
    # KServe answers NOT_FOUND; some Triton versions answer UNAVAILABLE "unknown model".
    return status == "NOT_FOUND" or "unknown model" in message.lower()


class TritonModelClient(ModelClient):
    """``ModelClient`` over ``tritonclient.grpc`` (Triton or the KServe ModelServer)."""

    backend = "remote"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 600.0,
        retries: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        ssl: bool = False,
        max_message_mb: int = 512,
    ) -> None:
        import tritonclient.grpc as grpcclient

        self._grpc = grpcclient
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        limit = max_message_mb * 1024 * 1024
        self._client = grpcclient.InferenceServerClient(
            url,
            ssl=ssl,
            channel_args=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
                # Reconnect quickly after a server restart; our own retries pace the calls.
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 2000),
                ("grpc.keepalive_time_ms", 30000),
                ("grpc.keepalive_timeout_ms", 10000),
            ],
        )

    # ----------------------------------------------------------------- health
    def wait_until_ready(self, models: Iterable[str] = (), timeout_s: float = 60.0) -> None:
        """Block until the server is live and ready (or ``models`` are), else raise.

        ``ModelNotFound`` if the server answers but does not know a model,
        ``ModelServerUnavailable`` if the deadline passes first.
        """
        models = list(models)
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while True:
            try:
                if not self._client.is_server_live(client_timeout=5):
                    last = "server not live"
                elif models:
                    pending = []
                    for name in models:
                        try:
                            if self._client.is_model_ready(name, client_timeout=5):
                                continue
                            if self._listed(name) is False:  # Triton: not ready and not in its repository
                                raise ModelNotFound(f"model {name!r} is not served at {self.url}")
                            pending.append(name)
                        except self._grpc.InferenceServerException as exc:
                            if _is_unknown_model(_status(exc), _message(exc)):
                                raise ModelNotFound(f"model {name!r} is not served at {self.url}") from exc
                            raise
                    if not pending:
                        return
                    last = f"models not ready: {pending}"
                elif self._client.is_server_ready(client_timeout=5):
                    return
                else:
                    last = "server not ready"
            except ModelNotFound:
                raise
            except self._grpc.InferenceServerException as exc:
                last = f"{_status(exc)}: {_message(exc)}"
            if time.monotonic() >= deadline:
                raise ModelServerUnavailable(f"model server at {self.url} not ready after {timeout_s:.0f} s ({last})")
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))

    def _listed(self, model: str) -> bool | None:
        """Whether the server's model repository lists ``model``; None where it has no repository index."""
        try:
            index = self._client.get_model_repository_index(client_timeout=5)
        except self._grpc.InferenceServerException:
            return None
        return any(entry.name == model for entry in index.models)

    def is_ready(self, model: str) -> bool:
        try:
            return bool(self._client.is_model_ready(model, client_timeout=5))
        except self._grpc.InferenceServerException:
            return False

    # ------------------------------------------------------------------ infer
    def _inputs(self, inputs: Mapping[str, np.ndarray]) -> list:
        tensors = []
        for name, value in inputs.items():
            array = np.asarray(value)
            if array.dtype.kind in "SUO":
                flat = [v.encode() if isinstance(v, str) else v for v in array.reshape(-1)]
                array = np.array(flat, dtype=np.object_).reshape(array.shape)
                datatype = "BYTES"
            else:
                datatype = self._grpc.np_to_triton_dtype(array.dtype)
                if datatype is None:
                    raise ModelError(f"input {name!r}: dtype {array.dtype} has no v2 datatype")
            tensor = self._grpc.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(np.ascontiguousarray(array))
            tensors.append(tensor)
        return tensors

    @staticmethod
    def _parameters(parameters: Mapping[str, Scalar] | None) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for key, value in (parameters or {}).items():
            if key in _RESERVED_PARAMETERS:
                raise ModelError(f"parameter name {key!r} is reserved by the v2 protocol")
            if value is None:
                continue
            if isinstance(value, np.generic):
                value = value.item()
            if not isinstance(value, str | bool | int | float):
                raise ModelError(f"parameter {key!r}: {type(value).__name__} is not str/int/float/bool")
            out[key] = value
        return out or None

    def infer(self, model, inputs, parameters=None) -> Tensors:
        tensors = self._inputs(inputs)
        params = self._parameters(parameters)
        start = time.perf_counter()
        outcome = "error"
        try:
            result = self._infer_with_retries(model, tensors, params)
            outputs = {out.name: result.as_numpy(out.name) for out in result.get_response().outputs}
            outcome = "ok"
            return outputs
        except ModelNotFound:
            outcome = "not_found"
            raise
        except ModelServerUnavailable:
            outcome = "unavailable"
            raise
        finally:
            CLIENT_SECONDS.labels(model, self.backend).observe(time.perf_counter() - start)
            CLIENT_REQUESTS.labels(model, self.backend, outcome).inc()

    def _infer_with_retries(self, model: str, tensors: list, params: dict[str, Any] | None):
        attempt = 0
        while True:
            try:
                return self._client.infer(
                    model, tensors, parameters=params, client_timeout=self.timeout_s
                )
            except self._grpc.InferenceServerException as exc:
                status, message = _status(exc), _message(exc)
                if _is_unknown_model(status, message):
                    raise ModelNotFound(f"model {model!r} is not served at {self.url}") from exc
                if status == "DEADLINE_EXCEEDED":
                    raise ModelError(f"model {model!r} timed out after {self.timeout_s:.0f} s") from exc
                if status != "UNAVAILABLE":
                    raise ModelError(f"model {model!r} failed ({status}): {message}") from exc
                if attempt >= self.retries:
                    raise ModelServerUnavailable(
                        f"model {model!r} unavailable at {self.url} after {attempt + 1} attempts: {message}"
                    ) from exc
            delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.8, 1.2)
            attempt += 1
            CLIENT_RETRIES.labels(model).inc()
            log.warning("model %s unavailable at %s; retry %d/%d in %.2f s", model, self.url, attempt,
                        self.retries, delay)
            time.sleep(delay)

    def close(self) -> None:
        self._client.close()


def make_model_client(settings: ModelBackendSettings | None = None) -> ModelClient:
    """The ``ModelClient`` the configuration asks for (``TIMBR_MODEL_BACKEND``); the only factory.

    The remote client waits for its server at start-up (``model_ready_timeout_s``, 0 skips the
    wait) and raises when it does not come up.
    """
    cfg = settings if settings is not None else ModelBackendSettings()
    if cfg.model_backend == "inprocess":
        import services.inference.models  # noqa: F401 - fills MODEL_REGISTRY

        return InProcessModelClient()
    client = TritonModelClient(
        cfg.model_url,
        timeout_s=cfg.model_timeout_s,
        retries=cfg.model_retries,
        backoff_s=cfg.model_retry_backoff_s,
        max_backoff_s=cfg.model_retry_max_backoff_s,
        ssl=cfg.model_ssl,
        max_message_mb=cfg.model_max_message_mb,
    )
    if cfg.model_ready_timeout_s > 0:
        models = [m.strip() for m in cfg.model_startup_models.split(",") if m.strip()]
        try:
            client.wait_until_ready(models, timeout_s=cfg.model_ready_timeout_s)
        except Exception:
            client.close()
            raise
    return client
