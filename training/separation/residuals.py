"""Residual examples: what the music/effect network really sees in the pipeline.

The pipeline feeds the network ``mix - speech``, where ``speech`` is DeepFilterNet3's soft-masked
estimate: the residual keeps some speech and has spectral holes where speech was taken out.
Training only on clean music + effects mixtures leaves the network worse than the DSP baseline
on such residuals, so this module builds examples the same way: train-split speech (espeak-ng),
music and effects mixed at 48 kHz, the pipeline's own speech stage run on them (through
``ModelClient``), and the residual (16 kHz) stored with its music and effect targets; the
speech the stage left behind is part of the effect target. Speech, music and effects come from
the pools (``data.py``): generated material, and with ``--recorded`` pools the calibration
packages' recordings and voices too, never an evaluation package.

    python -m training.separation.residuals var/separation/pools.npz var/separation/residuals.npz
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from services.common.audio import resample
from training.separation.data import SR, Pool, _rms, _segment, make_mixture

RATE = 48000


def build(pools: Path, out: Path, n: int = 240, seconds: float = 4.0, seed: int = 77) -> None:
    import services.inference.models  # noqa: F401 - registers the models
    from services.inference.model_client import InProcessModelClient
    from services.inference.pipelines.separate import SeparatePipeline

    pipeline = SeparatePipeline(InProcessModelClient())
    rng = np.random.default_rng(seed)
    pool = Pool(pools, "train")
    m16 = int(seconds * SR)
    residuals, musics, effects = [], [], []
    t0 = time.monotonic()
    for _ in range(n):
        music, effect = make_mixture(pool, rng, m16)
        sp = _segment(rng, pool.items["speech"][rng.integers(len(pool.items["speech"]))], m16)
        bg = _rms(music + effect)
        sp = sp / _rms(sp) * bg * 10 ** (rng.uniform(0, 12) / 20)          # speech 0..12 dB over background
        up = resample(np.stack([sp, music, effect]), SR, RATE)
        mix = up.sum(axis=0, keepdims=True)
        speech_est = pipeline._speech(mix)                                 # (1, N) at 48 kHz
        residual = resample(mix - speech_est, RATE, SR)[0][:m16]
        leak = residual - music - effect                                   # speech left behind, holes
        residuals.append(residual)
        musics.append(music)
        effects.append(effect + leak)
        if len(residuals) % 50 == 0:
            print(f"{len(residuals)} / {n} ({time.monotonic() - t0:.0f} s)", flush=True)
    np.savez(out, residual=np.stack(residuals), music=np.stack(musics), effect=np.stack(effects))
    print(f"{n} residual examples in {time.monotonic() - t0:.0f} s -> {out}")


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]), n=int(sys.argv[3]) if len(sys.argv) > 3 else 240,
          seconds=float(sys.argv[4]) if len(sys.argv) > 4 else 4.0)
