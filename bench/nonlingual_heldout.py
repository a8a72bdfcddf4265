"""``speech-nonlingual`` on held-out recordings: the words it keeps, the non-verbal sounds it takes out.

Each 12 s mixture (48 kHz, fixed seed) is one recorded voice's prompts, which hold nothing but
words, with non-verbal vocal sounds (cries, grunts, groans, laughs) between them in about two
gaps of five, and music and effects at -6 +- 3 dB as in ``separate_heldout``. The ``speech``
stem should be the words and nothing else, so it is scored (SI-SDR) against the words alone,
beside three baselines on the same audio: DeepFilterNet3 alone and the dialogue stem (both
ungated: they keep the cries), and the dialogue stem gated by the VAD alone (the gate's
fallback without Whisper). ``words kept`` is the share of the words' energy the gate lets
through, ``vocal out`` the share of the non-verbal sounds' energy it takes out.

Eval (``make bench``): the evaluation voices, wesnoth's cries (``vocal``), wesnoth / colobot
effects, wesnoth music. ``--role calib``: Allison (en, es), hedgewars' lines without words
(a ``train`` package), the calibration music and effects: the set the gate's constants were
chosen on.

    .venv/bin/python -m bench.nonlingual_heldout [--role calib] [-n 24]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import separate_heldout as sh
from bench.heldout import sources as ho
from tools.metrics import si_sdr

R, SECONDS, SEED, N_MIX = sh.R, 12.0, 7, 24
VOCAL_SHARE = 0.4     # the share of gaps that a non-verbal sound fills
VOCAL_ROLE = {"eval": "eval", "calib": "train"}   # hedgewars' lines train nothing and evaluate nothing


@dataclass
class VocalMixture:
    voice: str
    words: np.ndarray
    vocal: np.ndarray
    background: np.ndarray   # music + effects

    @property
    def mix(self) -> np.ndarray:
        return (self.words + self.vocal + self.background).astype(np.float32)


def mixtures(n_mix: int = N_MIX, role: str = "eval", seed: int = SEED) -> list[VocalMixture]:
    rng = np.random.default_rng(seed)
    n = int(SECONDS * R)
    voices = sh._by_source(ho.voices(role))
    effects = sh._by_source(ho.clips("effect", role))
    music_files = [c.path for c in ho.clips("music", role)]
    vocal_files = [c.path for c in ho.clips("vocal", VOCAL_ROLE[role])]
    out = []
    for i in range(n_mix):
        voice, fx = sorted(voices)[i % len(voices)], sorted(effects)[i % len(effects)]
        words, vocal = np.zeros(n, np.float32), np.zeros(n, np.float32)
        pos = int(rng.uniform(0.2, 0.8) * R)
        while pos < n - R:
            if rng.random() < VOCAL_SHARE:
                x, track, gain = sh._load(vocal_files[rng.integers(len(vocal_files))]), vocal, 10 ** (rng.uniform(-6, 0) / 20)
            else:
                x, track, gain = sh._load(voices[voice][rng.integers(len(voices[voice]))]), words, 1.0
            seg = x[: n - pos]
            track[pos:pos + len(seg)] = seg / (np.max(np.abs(x)) + 1e-9) * gain
            pos += len(x) + int(rng.uniform(0.25, 0.9) * R)
        spoken = words + vocal
        m, e = sh.background(rng, music_files, effects[fx], sh._rms(spoken[np.abs(spoken) > 1e-4]), n)
        scale = 0.5 / float(np.max(np.abs(spoken + m + e)))
        out.append(VocalMixture(voice, words * scale, vocal * scale, ((m + e) * scale).astype(np.float32)))
    return out


def _shares(estimate: np.ndarray, gate: np.ndarray, m: VocalMixture) -> dict[str, float]:
    words_kept = float(np.sum((gate * m.words) ** 2) / np.sum(m.words ** 2))
    vocal = float(np.sum(m.vocal ** 2))
    return {"si_sdr": si_sdr(estimate, m.words), "words_kept": words_kept,
            "vocal_out": 1 - float(np.sum((gate * m.vocal) ** 2)) / vocal if vocal > 0 else float("nan")}


def scores(mixes: list[VocalMixture], tmp: Path) -> dict[str, list[dict[str, float]]]:
    """Per method, one row per mixture: the pipeline end to end and the baselines."""
    import soundfile as sf

    import services.inference.models  # noqa: F401 - registers the models
    from services.common.audio import resample
    from services.inference.model_client import InProcessModelClient
    from services.inference.pipeline import JobContext, parse_params
    from services.inference.pipelines.separate import ASR_RATE, SeparatePipeline
    from services.inference.separation import gate as word_gate

    client = InProcessModelClient()
    pipeline = SeparatePipeline(client)
    out: dict[str, list[dict[str, float]]] = {k: [] for k in ("DeepFilterNet3 alone", "dialogue stem", "VAD gate", "Timbr")}
    for i, m in enumerate(mixes):
        src = tmp / f"nonlingual{i}.wav"
        sf.write(str(src), m.mix, R, subtype="FLOAT")
        params = parse_params("separate", {"file_id": "f", "separation_type": "speech-nonlingual", "bit_depth": 32})
        (tmp / f"nl{i}").mkdir(exist_ok=True)
        results = pipeline.run(JobContext("bench", "bench", "separate", params, {"file": src}, tmp / f"nl{i}"))
        speech = next(sf.read(str(r.path), dtype="float32")[0] for r in results if r.name.startswith("speech."))
        dialogue = pipeline._speech(m.mix[None])[0]
        regions = pipeline._vad_regions(resample(dialogue[None], R, ASR_RATE)[0])
        vad_gate = word_gate.gate(word_gate.dilate(regions or [], word_gate.REGION_PAD_S), len(dialogue), R)
        ones = np.ones(len(dialogue), np.float32)
        gate, _ = pipeline._word_gate(dialogue[None], {})   # the gate the job applied (one 20 s window)
        out["DeepFilterNet3 alone"].append(_shares(sh.dfn_alone(client, m.mix), ones, m))
        out["dialogue stem"].append(_shares(dialogue, ones, m))
        out["VAD gate"].append(_shares(dialogue * vad_gate, vad_gate, m))
        out["Timbr"].append(_shares(speech, gate, m))
    return out


def print_table(rows: dict[str, list[dict[str, float]]]) -> None:
    print(f"{'speech-nonlingual: speech stem against the words':<50} {'SI-SDR':>7} {'words kept':>11} {'vocal out':>10}")
    for name, part in rows.items():
        si, kept, gone = (np.nanmean([r[k] for r in part]) for k in ("si_sdr", "words_kept", "vocal_out"))
        print(f"{name:<50} {si:7.2f} {100 * kept:10.1f}% {100 * gone:9.1f}%")
    timbr = np.mean([r["si_sdr"] for r in rows["Timbr"]])
    best = max(np.mean([r["si_sdr"] for r in part]) for name, part in rows.items() if name != "Timbr")
    print(f"rule: Timbr {timbr:.2f} dB against the best baseline {best:.2f} dB: {'met' if timbr >= best else 'MISSED'}")


def table(n_mix: int = N_MIX, role: str = "eval") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mixes = mixtures(n_mix, role)
        print(f"speech-nonlingual, {role}: {len(mixes)} x {SECONDS:.0f} s at 48 kHz, recorded prompts with non-verbal "
              "sounds in their gaps, music and effects at -6 +- 3 dB")
        print_table(scores(mixes, Path(tmp)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="eval", choices=sorted(VOCAL_ROLE))
    ap.add_argument("-n", type=int, default=N_MIX)
    args = ap.parse_args()
    table(args.n, args.role)


if __name__ == "__main__":
    main()
