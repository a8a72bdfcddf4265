#!/usr/bin/env bash
# Stage 4 of the music/effect network on one CUDA GPU, from pools packed by pack.py (the GPU machine
# needs only python3 with numpy, scipy, torch, onnx and soundfile: no Debian audio packages).
# Two runs share the GPU for the same wall time, each with its own DataLoader workers:
#   finetune  the stage-3 network (hidden 192; $STAGE3, from `make train-separation-recorded`, or
#             member 0 of the shipped ensemble) trained on, on the larger recorded pools: the
#             comparison run (skipped when $STAGE3 is missing);
#   wide      a wider network (hidden 256) from scratch on the same data (seed $SEED): the stage-4
#             member that ensemble.py averages with stage 3 (model card);
#   wide_more the stage-4 `wide` network ($WIDE: `ensemble.py --split` of the shipped weights,
#             member1.onnx) trained on at max lr 1e-3 for the same time (skipped when $WIDE is
#             missing): stage 5's candidate.
# Each writes <name>.onnx, <name>.pt, <name>_log.json and a state dict at 75 % of the time.
#
#   bash training/separation/gpu.sh var/separation/gpu/pack.npz OUTDIR [MINUTES]
set -euo pipefail
PACK=${1:?packed npz from pack.py}
OUTDIR=${2:?output folder}
MINUTES=${3:-8}
DEVICE=${DEVICE:-cuda}        # DEVICE=cpu WORKERS=1 for a smoke test of the script
WORKERS=${WORKERS:-6}
STAGE3=${STAGE3:-var/separation/recorded/music_effect.onnx}
WIDE=${WIDE:-var/separation/shipped/member1.onnx}
SEED=${SEED:-20261205}
WORK=$(mktemp -d)
mkdir -p "$OUTDIR"
python3 -m training.separation.pack --unpack "$PACK" "$WORK"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
common=(--pools "$WORK/pools.npz" --residuals "$WORK/residuals.npz" --residual-prob 0.5 --device "$DEVICE"
        --workers "$WORKERS" --batch 32 --seconds 6 --budget-minutes "$MINUTES" --snapshot-fractions 0.75
        --log-every 200 --max-minutes 1000)
if [ -f "$STAGE3" ]; then
  python3 -m training.separation.train "${common[@]}" --init "$STAGE3" \
    --max-lr 1e-3 --seed 20261204 --out "$OUTDIR/finetune.onnx" --log "$OUTDIR/finetune_log.json" \
    --snapshots "$OUTDIR/finetune" 2>&1 | sed -u 's/^/[finetune] /' &
else
  echo "no stage-3 network at $STAGE3: the finetune comparison run is skipped"
fi
if [ -f "$WIDE" ]; then
  python3 -m training.separation.train "${common[@]}" --init "$WIDE" \
    --max-lr 1e-3 --seed $((SEED + 1)) --out "$OUTDIR/wide_more.onnx" --log "$OUTDIR/wide_more_log.json" \
    --snapshots "$OUTDIR/wide_more" 2>&1 | sed -u 's/^/[wide_more] /' &
fi
python3 -m training.separation.train "${common[@]}" --hidden 256 \
  --max-lr 2e-3 --seed "$SEED" --out "$OUTDIR/wide.onnx" --log "$OUTDIR/wide_log.json" \
  --snapshots "$OUTDIR/wide" 2>&1 | sed -u 's/^/[wide] /' &
wait
ls -la "$OUTDIR" "$OUTDIR"/*/
