"""An ONNX model on Triton's python backend with onnxruntime, batching the requests it is handed.

Production serves ``triton_models/speaker_encoder`` on Triton's onnxruntime backend (``config.pbtxt``).
The Triton that runs here (the wheel of ``make triton``) has no onnxruntime backend, so the local
repository serves the same ``model.onnx`` through this file with ``config.cpu.pbtxt``: same inputs,
outputs, ``max_batch_size`` and dynamic batching. Requests that Triton's dynamic batcher hands over
together and that share a shape run as one onnxruntime batch; a bad request fails alone.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# Loaded by path by Triton's stub, which ignores PYTHONPATH (see triton_entry.py).
sys.path[:0] = [p for p in os.environ.get("TIMBR_TRITON_PYTHONPATH", "").split(os.pathsep)
                if p and p not in sys.path]

import numpy as np


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        import onnxruntime as ort
        import triton_python_backend_utils as pb_utils

        self._pb = pb_utils
        config = json.loads(args["model_config"])
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("TIMBR_TRITON_ORT_THREADS", "1"))
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def execute(self, requests: list) -> list:
        feeds, responses = [], [None] * len(requests)
        for i, request in enumerate(requests):
            try:
                feeds.append((i, {n: self._pb.get_input_tensor_by_name(request, n).as_numpy()
                                  for n in self.inputs}))
            except Exception as exc:  # noqa: BLE001 - one bad request fails alone
                responses[i] = self._error(exc)
        groups: dict[tuple, list[tuple[int, dict]]] = {}
        for i, feed in feeds:
            groups.setdefault(tuple(feed[n].shape[1:] for n in self.inputs), []).append((i, feed))
        for group in groups.values():
            self._run(group, responses)
        return responses

    def _run(self, group: list[tuple[int, dict]], responses: list) -> None:
        """One onnxruntime call for requests of one shape; rows split back per request."""
        try:
            batch = {n: np.concatenate([feed[n] for _, feed in group]) for n in self.inputs}
            results = dict(zip(self.outputs, self.session.run(self.outputs, batch), strict=True))
        except Exception as exc:  # noqa: BLE001 - the whole group failed: answer each request
            for i, _ in group:
                responses[i] = self._error(exc)
            return
        start = 0
        for i, feed in group:
            rows = len(feed[self.inputs[0]])
            tensors = [self._pb.Tensor(n, results[n][start:start + rows]) for n in self.outputs]
            responses[i] = self._pb.InferenceResponse(output_tensors=tensors)
            start += rows

    def _error(self, exc: Exception):
        return self._pb.InferenceResponse(output_tensors=[], error=self._pb.TritonError(str(exc)))

    def finalize(self) -> None:
        self.session = None
