"""The one door from pipelines to models.

Pipelines never import a model runtime (onnxruntime, CTranslate2, torch, a Rust extension):
they call ``ModelClient.infer(name, inputs, parameters)`` with numpy arrays and get numpy
arrays back, the shape of the KServe v2 / Open Inference Protocol that Triton speaks too.
JSON results travel as a one-element BYTES (``np.object_``) tensor; see ``json_output``.

``InProcessModelClient`` is the embedded default: it loads each ``Model`` once per process,
on first use. A remote client (tritonclient over gRPC) implements the same interface.
"""

from __future__ import annotations

import importlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from services.inference.errors import ModelError, ModelNotFound

Scalar = str | int | float | bool
Tensors = dict[str, np.ndarray]


class Model(ABC):
    """A model served by name: ``load()`` once, then ``predict`` many times.

    The same class runs in-process, in the KServe ModelServer and in a Triton python
    backend ``model.py``: the servers are thin adapters around it.
    """

    name: str = ""

    def __init__(self) -> None:
        self.ready = False

    @abstractmethod
    def load(self) -> None:
        """Load weights; set ``self.ready = True`` when done."""

    @abstractmethod
    def predict(self, inputs: Tensors, parameters: Mapping[str, Scalar]) -> Tensors:
        """Run one request: named numpy tensors in, named numpy tensors out."""


# name -> "module:Class". Imported lazily so a worker only pays for the models it uses.
MODEL_REGISTRY: dict[str, str] = {}


def register_model(name: str, target: str) -> None:
    MODEL_REGISTRY[name] = target


def json_output(value: Any) -> np.ndarray:
    """Pack a JSON-serialisable value as a one-element BYTES tensor."""
    return np.array([json.dumps(value).encode()], dtype=np.object_)


def parse_json_output(tensor: np.ndarray) -> Any:
    item = tensor.reshape(-1)[0]
    return json.loads(item.decode() if isinstance(item, bytes | bytearray) else item)


class ModelClient(ABC):
    """Reach models by name; numpy in, numpy (or JSON via ``json_output``) out."""

    @abstractmethod
    def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], parameters: Mapping[str, Scalar] | None = None
    ) -> Tensors: ...

    @abstractmethod
    def is_ready(self, model: str) -> bool: ...

    def close(self) -> None:
        """Release connections or sessions."""


class InProcessModelClient(ModelClient):
    """Runs models in this process, each loaded once on first use (thread-safe)."""

    def __init__(self, registry: Mapping[str, str] | None = None) -> None:
        self._registry = dict(registry if registry is not None else MODEL_REGISTRY)
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()

    def add(self, model: Model) -> None:
        """Register an already-built model instance (tests, custom deployments)."""
        with self._lock:
            self._models[model.name] = model

    def get(self, name: str) -> Model:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                target = self._registry.get(name)
                if target is None:
                    raise ModelNotFound(f"model {name!r} is not registered")
                module, _, attr = target.partition(":")
                model = getattr(importlib.import_module(module), attr)()
                self._models[name] = model
            if not model.ready:
                try:
                    model.load()
                except Exception as exc:  # not installed, weights missing: not served here
                    raise ModelNotFound(f"model {name!r} could not load: {type(exc).__name__}: {exc}") from exc
                model.ready = True
            return model

    def infer(self, model, inputs, parameters=None):
        try:
            return self.get(model).predict(dict(inputs), dict(parameters or {}))
        except ModelError:
            raise
        except Exception as exc:  # wrap runtime errors so callers see one exception tree
            raise ModelError(f"model {model!r} failed: {exc}") from exc

    def is_ready(self, model: str) -> bool:
        try:
            return self.get(model).ready
        except ModelError:
            return False


__all__ = [
    "MODEL_REGISTRY",
    "InProcessModelClient",
    "Model",
    "ModelClient",
    "ModelError",
    "ModelNotFound",
    "Scalar",
    "Tensors",
    "json_output",
    "parse_json_output",
    "register_model",
]
