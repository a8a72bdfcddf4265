"""Triton python-backend adapter: one registered ``Model``, served by Triton Inference Server.

Each ``triton_models/<name>/1/model.py`` is two lines::

    from services.inference.model_server.triton_python import TimbrTritonModel as TritonPythonModel

Triton calls ``initialize`` / ``execute`` / ``finalize``. The Triton model name is the
registry name, so the same ``Model`` class answers in-process, in the KServe ModelServer and
in Triton (one implementation, thin adapters):

- ``initialize`` reads the output dtypes from ``config.pbtxt`` (the contract Triton checks),
  builds the model from ``services.inference.models``, hands it the instance's device when
  the model has a ``device`` attribute (``"cuda:N"`` on a KIND_GPU instance, ``"cpu"``
  otherwise), and loads it.
- ``execute`` runs each request on its own and fails one request at a time with a
  ``TritonError`` carrying the model's message; request parameters reach ``Model.predict``
  as the same dict the in-process client passes.

Triton needs the repository root on ``PYTHONPATH`` and the project's dependencies in the
python backend's environment (see docs/serving.md). ``triton_python_backend_utils`` exists
only inside Triton, so it is imported in ``initialize``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from services.inference.model_client import MODEL_REGISTRY, Model


def _build(name: str) -> Model:
    import importlib

    import services.inference.models  # noqa: F401 - fills MODEL_REGISTRY

    target = MODEL_REGISTRY.get(name)
    if target is None:
        raise KeyError(f"no registered model {name!r} (triton model name must be a registry name)")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)()


class TimbrTritonModel:
    """``TritonPythonModel`` for any registered model; the name comes from ``config.pbtxt``."""

    def initialize(self, args: dict[str, Any]) -> None:
        import triton_python_backend_utils as pb_utils

        self._pb = pb_utils
        config = json.loads(args["model_config"])
        self.name = config["name"]
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        if params.get("TIMBR_MODELS_DIR"):
            os.environ.setdefault("TIMBR_MODELS_DIR", params["TIMBR_MODELS_DIR"])
        self.outputs = {
            out["name"]: pb_utils.triton_string_to_numpy(out["data_type"]) for out in config["output"]
        }
        self.model = _build(self.name)
        if hasattr(self.model, "device"):
            gpu = args.get("model_instance_kind") == "GPU"
            self.model.device = f"cuda:{args.get('model_instance_device_id', 0)}" if gpu else "cpu"
        self.model.load()
        self.model.ready = True

    def _parameters(self, request) -> dict[str, Any]:
        raw = request.parameters() if hasattr(request, "parameters") else "{}"
        return json.loads(raw or "{}")

    def execute(self, requests: list) -> list:
        pb = self._pb
        responses = []
        for request in requests:
            try:
                inputs = {t.name(): t.as_numpy() for t in request.inputs()}
                result = self.model.predict(inputs, self._parameters(request))
                tensors = []
                for name, dtype in self.outputs.items():
                    if name not in result:
                        continue
                    array = np.asarray(result[name])
                    tensors.append(pb.Tensor(name, array if dtype == np.object_ else array.astype(dtype)))
                responses.append(pb.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # noqa: BLE001 - one request fails; the instance carries on
                responses.append(pb.InferenceResponse(output_tensors=[], error=pb.TritonError(str(exc))))
        return responses

    def finalize(self) -> None:
        close = getattr(self.model, "close", None)
        if callable(close):
            close()
        self.model.ready = False
