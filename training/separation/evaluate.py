"""Compare the trained network with the DSP baseline on held-out music/effect mixtures.

Two held-out sets, both built from material never used in training:

- ``pool``: 48 mixtures of 8 s drawn from the held-out split of ``pools.npz`` (music pieces,
  effect files and generated sounds of held-out seeds, held-out espeak voices as leakage),
  at 16 kHz, the same recipe as training.
- ``bench``: 12 mixtures of 10 s at 48 kHz from ``heldout.py`` (MIDI generated with held-out
  seeds, held-out effects), run through the product model ``music_effect_separator``.
- ``pipeline``: 8 speech + music + effects mixtures of 10 s at 48 kHz (held-out voices, music
  and effects; seeds apart from the benchmark's): the pipeline's speech stage runs first and
  the residual ``mix - speech`` is split, as in ``dialogue-music-effect``; scored against the
  true music and effects.

Prints and writes ``var/separation/eval.json``: SI-SDR of music and effect for the unprocessed
input, the baseline and the network. The network is kept only if it beats the baseline.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from services.inference.models.music_effect import MusicEffectSeparator
from training.separation import heldout
from training.separation.data import SR, Pool, make_mixture


def _scores(model: MusicEffectSeparator, pairs: list[tuple[np.ndarray, np.ndarray]], rate: int) -> dict:
    out: dict[str, dict[str, float]] = {}
    for method in ("input", "baseline", "network"):
        ms, es = [], []
        for music, effect in pairs:
            mix = music + effect
            if method == "input":
                m_est, e_est = mix, mix
            else:
                res = model.predict({"audio": mix}, {"sample_rate": rate, "method": method})
                m_est, e_est = res["music"], res["effect"]
            ms.append(heldout.si_sdr(m_est, music))
            es.append(heldout.si_sdr(e_est, effect))
        out[method] = {"music_si_sdr": round(float(np.mean(ms)), 2), "effect_si_sdr": round(float(np.mean(es)), 2)}
    return out


def _pipeline_scores(model: MusicEffectSeparator) -> dict:
    import services.inference.models  # noqa: F401 - registers the models
    from services.inference.model_client import InProcessModelClient
    from services.inference.pipelines.separate import SeparatePipeline

    pipeline = SeparatePipeline(InProcessModelClient())
    rows: dict[str, list[tuple[float, float]]] = {"input": [], "baseline": [], "network": []}
    voices = ("en-gb-x-rp", "en-us+f3", "nl", "pt")
    for i in range(8):
        mx = heldout.mixture(500 + i, 10.0, 48000, music_db=-6.0 + (i % 3) * 2, effect_db=-4.0 - (i % 4) * 2,
                             voice=voices[i % 4])
        speech = pipeline._speech(mx.mix[None])[0]
        residual = mx.mix - speech
        rows["input"].append((heldout.si_sdr(residual, mx.music), heldout.si_sdr(residual, mx.effect)))
        for method in ("baseline", "network"):
            out = model.predict({"audio": residual}, {"sample_rate": 48000, "method": method})
            rows[method].append((heldout.si_sdr(out["music"], mx.music), heldout.si_sdr(out["effect"], mx.effect)))
    return {k: {"music_si_sdr": round(float(np.mean([r[0] for r in v])), 2),
                "effect_si_sdr": round(float(np.mean([r[1] for r in v])), 2)} for k, v in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pools", default="var/separation/pools.npz")
    ap.add_argument("--out", default="var/separation/eval.json")
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--sets", default="pool,bench,pipeline")
    args = ap.parse_args()
    sets = args.sets.split(",")
    model = MusicEffectSeparator(Path(args.weights) if args.weights else None)
    model.load()
    if not model.has_network:
        raise SystemExit(f"no weights at {model.weights}")
    rng = np.random.default_rng(args.seed)
    results = {}
    if "pool" in sets and Path(args.pools).exists():
        test = Pool(Path(args.pools), "test")
        pairs = [make_mixture(test, rng, 8 * SR) for _ in range(48)]
        results["pool_16k"] = _scores(model, pairs, SR)
        print("pool (16 kHz, 48 x 8 s):", json.dumps(results["pool_16k"]), flush=True)
    if "pipeline" in sets:
        results["pipeline_48k"] = _pipeline_scores(model)
        print("pipeline (48 kHz, 8 x 10 s, after the speech stage):", json.dumps(results["pipeline_48k"]), flush=True)
    pairs = []
    for i in range(12 if "bench" in sets else 0):
        m = heldout.music(100 + i, 10.0, 48000)
        e = heldout.effects(100 + i, 10.0, 48000, texture=i % 3 != 0)
        gain = 10 ** (rng.uniform(-6, 6) / 20)
        e = e / (np.sqrt(np.mean(e ** 2)) + 1e-9) * np.sqrt(np.mean(m ** 2)) * gain
        pairs.append((m * 0.1, (e * 0.1).astype(np.float32)))
    if pairs:
        results["bench_48k"] = _scores(model, pairs, 48000)
        print("bench (48 kHz, 12 x 10 s):", json.dumps(results["bench_48k"]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
