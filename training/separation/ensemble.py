"""Assemble one ONNX file from several trained mask networks: the mean of their music masks.

Stage 4 (model card) ships two members: the stage-3 network (width 192, trained long on
General-MIDI renderings and fine-tuned on two games' scores) and the `wide` network (width 256,
trained on a GPU on nine games' scores). On real recordings the wide one is better, on the
project's synthetic mixtures the stage-3 one; their mean holds the calibration and tune sets'
gains without falling below the DSP baseline on the synthetic set.

    python -m training.separation.ensemble services/inference/models/weights/music_effect.onnx \
        var/separation/recorded/music_effect.onnx var/separation/gpu/out/wide.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.separation.train import MaskEnsemble, MaskNet, export_onnx, member_states, state_from_onnx


def assemble(out: Path, members: list[Path]) -> None:
    nets = [MaskNet.from_state(state_from_onnx(p)) for p in members]
    export_onnx(MaskEnsemble(nets), out)
    params = sum(p.numel() for n in nets for p in n.parameters())
    print(f"{out}: mean of {len(nets)} networks, {params} parameters, {out.stat().st_size / 1e6:.1f} MB")


def split(ensemble: Path, outdir: Path) -> list[Path]:
    """Each member of an assembled ONNX file as its own single-network ONNX (``member<k>.onnx``),
    in assembly order: what ``train.py --init`` and ``assemble`` take."""
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, state in enumerate(member_states(ensemble)):
        path = outdir / f"member{k}.onnx"
        export_onnx(MaskNet.from_state(state), path)
        paths.append(path)
        print(f"{path}: member {k} of {ensemble}, width {state['inp.bias'].shape[0]}")
    return paths


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out", help="the ONNX file to write (with --split: the folder for the members)")
    ap.add_argument("members", nargs="+", help="ONNX files of single networks (train.py exports); "
                    "with --split, the one assembled file to take apart")
    ap.add_argument("--split", action="store_true", help="write each member of an assembled file on its own")
    args = ap.parse_args()
    if args.split:
        split(Path(args.members[0]), Path(args.out))
    else:
        assemble(Path(args.out), [Path(m) for m in args.members])
