"""Held-out 3-stem mixtures of real recordings, and the naive baseline scored beside the pipeline.

Sources are the evaluation side of ``bench/heldout`` only: recorded voices (the six asterisk
French, Russian, Italian and Spanish voices), recorded music (wesnoth-1.16-music) and recorded
effects (wesnoth-1.16-data sounds, colobot-common-sounds). None of them trains or calibrates anything.
Each mixture: one voice's prompts joined with natural pauses, a stretch of one score, and 6-9
effects placed at random; music and effect each at -6 +- 3 dB against the speech (RMS over the
speech that sounds). Built on the fly from a fixed seed, never stored.

Baseline (the same models composed plainly): speech = DeepFilterNet3's output alone; music /
effect = HPSS (median filtering, Fitzgerald 2010) of the DeepFilterNet3 residual
``mix - DeepFilterNet3(mix)``: harmonic -> music, percussive -> effect.

    .venv/bin/python -m bench.separate_heldout [--weights music_effect.onnx ...]   # network only
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import median_filter

from bench.heldout import sources as ho
from services.common.audio import InvalidAudio
from tools.metrics import si_sdr

R = 48000
N_MIX, SECONDS, SEED = 24, 12.0, 16_016   # 24 since 2026-12-05: 12 left 6 mixtures a group


@dataclass
class Mixture:
    voice: str
    effects: str
    speech: np.ndarray
    music: np.ndarray
    effect: np.ndarray

    @property
    def mix(self) -> np.ndarray:
        return self.speech + self.music + self.effect


@functools.cache
def _load(path: Path) -> np.ndarray:
    try:
        return ho.load(path, R)
    except InvalidAudio:  # a packaged clip that does not decode (supertuxkart energy_bar_unfull.ogg)
        return np.zeros(1, np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def _speech(rng: np.random.Generator, files: list[Path], n: int) -> np.ndarray:
    out, pos = np.zeros(n, np.float32), int(rng.uniform(0.2, 0.8) * R)
    while pos < n - R:
        x = _load(files[rng.integers(len(files))])
        seg = x[: n - pos]
        out[pos:pos + len(seg)] = seg / (np.max(np.abs(x)) + 1e-9)
        pos += len(x) + int(rng.uniform(0.25, 0.9) * R)
    return out


def _music(rng: np.random.Generator, files: list[Path], n: int) -> np.ndarray:
    for _ in range(20):
        x = _load(files[rng.integers(len(files))])
        if len(x) <= n:
            continue
        seg = x[(s := rng.integers(0, len(x) - n)):s + n]
        if _rms(seg) > 0.3 * _rms(x):                                     # not a fade or a silence
            return seg
    return np.resize(x, n)


def _effects(rng: np.random.Generator, files: list[Path], n: int) -> np.ndarray:
    out = np.zeros(n, np.float32)
    for _ in range(rng.integers(6, 10)):
        x = _load(files[rng.integers(len(files))])[: 3 * R]
        pos = int(rng.integers(0, max(1, n - len(x) // 2)))
        seg = x[: n - pos]
        out[pos:pos + len(seg)] += seg / (np.max(np.abs(x)) + 1e-9) * 10 ** (rng.uniform(-6, 0) / 20)
    return out


def background(rng: np.random.Generator, music_files: list[Path], effect_files: list[Path], ref: float,
               n: int) -> tuple[np.ndarray, np.ndarray]:
    """A stretch of one score and 6-9 effects, each at -6 +- 3 dB against ``ref`` (the speech's RMS)."""
    m, e = _music(rng, music_files, n), _effects(rng, effect_files, n)
    return (m / _rms(m) * ref * 10 ** (rng.uniform(-9, -3) / 20),
            e / _rms(e) * ref * 10 ** (rng.uniform(-9, -3) / 20))


def _by_source(items: list) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for item in items:
        out.setdefault(item.source, []).append(item.path)
    return out


def mixtures(n_mix: int = N_MIX, seconds: float = SECONDS, seed: int = SEED, role: str = "eval",
             ambience: bool = False) -> list[Mixture]:
    """The held-out set: the voice source cycles, the effect source alternates, music is drawn.
    ``role="calib"`` builds the same kind of set from the calibration packages; ``role="tune"``
    from music and effects that nothing trained on (the voices are the calibration ones: the
    tune packages hold none), to choose the network / HPSS blend on. ``ambience`` lays a recorded
    ambience loop of the same role under each mixture's effects (``with_ambience``)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * R)
    voices = _by_source(ho.voices("calib" if role == "tune" else role))
    effects = _by_source(ho.clips("effect", role))
    music_files = [c.path for c in ho.clips("music", role)]
    out = []
    for i in range(n_mix):
        voice, fx = sorted(voices)[i % len(voices)], sorted(effects)[i % len(effects)]
        sp = _speech(rng, voices[voice], n)
        m, e = background(rng, music_files, effects[fx], _rms(sp[np.abs(sp) > 1e-4]), n)
        scale = 0.5 / float(np.max(np.abs(sp + m + e)))
        out.append(Mixture(voice, fx, sp * scale, (m * scale).astype(np.float32), (e * scale).astype(np.float32)))
    return with_ambience(out, role, seed) if ambience else out


def with_ambience(mixes: list[Mixture], role: str, seed: int = SEED) -> list[Mixture]:
    """The same mixtures with a recorded ambience loop (birds, a campfire, rain, a ship...) added to
    each effect stem at -6..0 dB against its events, as a film's effect stem holds a bed under its
    events. Drawn from a generator of its own, so the mixtures' other stems stay as they were."""
    rng = np.random.default_rng(seed + 1)
    loops = [c.path for c in ho.clips("ambience", role)]
    if not loops:
        raise ValueError(f"no ambience recordings have the role {role!r} (bench/heldout/sources.py)")
    out = []
    for m in mixes:
        n = len(m.mix)
        x = _load(loops[rng.integers(len(loops))])
        x = x[(s := rng.integers(0, len(x) - n)):s + n] if len(x) > n else np.resize(x, n)   # a short loop repeats
        bed = x / _rms(x) * _rms(m.effect) * 10 ** (rng.uniform(-6, 0) / 20)
        effect = m.effect + bed
        scale = 0.5 / float(np.max(np.abs(m.speech + m.music + effect)))
        out.append(Mixture(m.voice, m.effects, m.speech * scale, (m.music * scale).astype(np.float32),
                           (effect * scale).astype(np.float32)))
    return out


def hpss_music(residual: np.ndarray, n_fft: int = 4096, kernel: int = 17) -> np.ndarray:
    """The harmonic part of HPSS (soft mask H^2 / (H^2 + P^2)): the baseline's music stem."""
    from services.inference.separation.stft import istft, stft

    spec = stft(residual, n_fft, n_fft // 4)                              # (T, F)
    mag = np.abs(spec)
    h = median_filter(mag, size=(kernel, 1))
    p = median_filter(mag, size=(1, kernel))
    mask = h ** 2 / (h ** 2 + p ** 2 + 1e-12)
    return istft(spec * mask, n_fft, n_fft // 4, len(residual))


@dataclass
class Stage:
    """What the speech stage gives for one mixture: the pipeline's soft-masked speech and
    DeepFilterNet3's raw output (the baseline), both at 48 kHz."""
    speech: np.ndarray
    dfn: np.ndarray


def dfn_alone(client, mix: np.ndarray) -> np.ndarray:
    """DeepFilterNet3 alone on a mono 48 kHz mixture: the speech baseline, and the speech
    stage's first step."""
    out = np.asarray(client.infer("speech_enhancer", {"audio": mix.astype(np.float32)})["audio"], np.float32)
    return out.reshape(-1)[: len(mix)]


def speech_stage(mixes: list[Mixture]) -> list[Stage]:
    import services.inference.models  # noqa: F401 - registers the models
    from services.inference.model_client import InProcessModelClient

    client = InProcessModelClient()
    out = []
    for m in mixes:
        raw = dfn_alone(client, m.mix)
        speech = client.infer("speech_mask", {"audio": m.mix[None].astype(np.float32), "enhanced": raw})["speech"][0]
        out.append(Stage(speech, raw))
    return out


def network_scores(mixes: list[Mixture], stages: list[Stage], weights: Path | None) -> list[dict]:
    """music / effect SI-SDR of the network (``weights``) on the pipeline residual, per mixture."""
    from services.inference.models.music_effect import MusicEffectSeparator

    model = MusicEffectSeparator(weights)
    model.load()
    rows = []
    for m, st in zip(mixes, stages, strict=True):
        res = m.mix - st.speech
        music = model.predict({"audio": res}, {"sample_rate": R})["music"]
        rows.append({"music": si_sdr(music, m.music), "effect": si_sdr(res - music, m.effect)})
    return rows


def baseline_scores(mixes: list[Mixture], stages: list[Stage]) -> list[dict]:
    rows = []
    for m, st in zip(mixes, stages, strict=True):
        res = m.mix - st.dfn
        music = hpss_music(res)
        rows.append({"speech": si_sdr(st.dfn, m.speech), "music": si_sdr(music, m.music),
                     "effect": si_sdr(res - music, m.effect)})
    return rows


def cached(path: Path | None, n_mix: int = N_MIX, role: str = "eval") -> tuple[list[Mixture], list[Stage]]:
    """Mixtures and their speech stage, kept in ``path`` (an npz under var/) between runs."""
    if path and path.exists():
        z = np.load(path)
        mixes = [Mixture(str(z["voice"][i]), str(z["fx"][i]), z["speech"][i], z["music"][i], z["effect"][i])
                 for i in range(len(z["voice"]))]
        return mixes, [Stage(z["st_speech"][i], z["st_dfn"][i]) for i in range(len(mixes))]
    mixes = mixtures(n_mix, role=role)
    stages = speech_stage(mixes)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, voice=[m.voice for m in mixes], fx=[m.effects for m in mixes],
                 speech=np.stack([m.speech for m in mixes]), music=np.stack([m.music for m in mixes]),
                 effect=np.stack([m.effect for m in mixes]), st_speech=np.stack([s.speech for s in stages]),
                 st_dfn=np.stack([s.dfn for s in stages]))
    return mixes, stages


def pipeline_rows(run, mixes: list[Mixture], stages: list[Stage], tmp: Path) -> list[dict]:
    """Run the real pipeline (``run(src, work, type) -> stems``) on each mixture; score it and the
    baseline (from ``stages``) on the same audio. One row per mixture and stem."""
    import soundfile as sf

    rows = []
    for i, (m, st) in enumerate(zip(mixes, stages, strict=True)):
        src = tmp / f"heldout{i}.wav"
        sf.write(str(src), m.mix, R, subtype="FLOAT")
        me = run(src, tmp / f"ho_me{i}", "dialogue-me")
        dme = run(src, tmp / f"ho_dme{i}", "dialogue-music-effect")
        base = baseline_scores([m], [st])[0]
        base_me = si_sdr(m.mix - st.dfn, m.music + m.effect)
        got = {"speech": si_sdr(me["speech"], m.speech), "me": si_sdr(me["me"], m.music + m.effect),
               "music": si_sdr(dme["music"], m.music), "effect": si_sdr(dme["effect"], m.effect)}
        for stem, value in got.items():
            source = m.voice if stem in ("speech", "me") else m.effects
            rows.append({"stem": stem, "source": source, "timbr": value,
                         "baseline": base_me if stem == "me" else base[stem]})
    return rows


def cached_rows(mixes: list[Mixture], stages: list[Stage]) -> list[dict]:
    """The pipeline's stages in process on a cached speech-stage output (one window, as the
    pipeline runs a file under 20 s): the same rows as ``pipeline_rows`` at a fraction of the cost."""
    from services.inference.models.music_effect import MusicEffectSeparator
    from services.inference.models.speech_mask import SpeechMask

    model, speech_mask = MusicEffectSeparator(), SpeechMask()
    model.load()
    speech_mask.load()
    rows = []
    for m, st in zip(mixes, stages, strict=True):
        speech = speech_mask.predict({"audio": m.mix[None], "enhanced": st.dfn}, {})["speech"][0]
        music = model.predict({"audio": m.mix - speech}, {"sample_rate": R})["music"]
        base = baseline_scores([m], [st])[0]
        got = {"speech": si_sdr(speech, m.speech), "me": si_sdr(m.mix - speech, m.music + m.effect),
               "music": si_sdr(music, m.music), "effect": si_sdr(m.mix - speech - music, m.effect)}
        for stem, value in got.items():
            rows.append({"stem": stem, "source": m.voice if stem in ("speech", "me") else m.effects, "timbr": value,
                         "baseline": si_sdr(m.mix - st.dfn, m.music + m.effect) if stem == "me" else base[stem]})
    return rows


GOALS = {"speech": 10.0, "me": None, "music": 3.0, "effect": 3.0}


def print_table(rows: list[dict]) -> None:
    """Per stem: every source, then all; Timbr, the baseline and the difference (dB SI-SDR)."""
    print(f"{'stem':<7} {'source':<32} {'Timbr':>7} {'baseline':>9} {'diff':>7}  goal")
    for stem, goal in GOALS.items():
        sel = [r for r in rows if r["stem"] == stem]
        for source in sorted({r["source"] for r in sel}) + ["all"]:
            part = [r for r in sel if source in ("all", r["source"])]
            t, b = np.mean([r["timbr"] for r in part]), np.mean([r["baseline"] for r in part])
            mark = "" if goal is None or source != "all" else f">= {goal:.0f} {'met' if t >= goal else 'MISSED'}"
            print(f"{stem:<7} {source:<32} {t:7.2f} {b:9.2f} {t - b:+7.2f}  {mark}")


def pipeline_table(tmp: Path, n_mix: int = N_MIX, ambience: bool = False) -> None:
    """What ``make bench`` prints: the real pipeline on the held-out set against the baseline
    (``ambience``: the same mixtures with an ambience bed under the effects)."""
    import soundfile as sf

    import services.inference.models  # noqa: F401 - registers the models
    from services.inference.model_client import InProcessModelClient
    from services.inference.pipeline import JobContext, parse_params
    from services.inference.pipelines.separate import SeparatePipeline

    pipeline = SeparatePipeline(InProcessModelClient())

    def run(src: Path, work: Path, kind: str) -> dict[str, np.ndarray]:
        work.mkdir(parents=True, exist_ok=True)
        params = parse_params("separate", {"file_id": "f", "separation_type": kind, "bit_depth": 32})
        ctx = JobContext("bench", "bench", "separate", params, {"file": src}, work)
        results = pipeline.run(ctx)
        return {r.name.split(".")[0]: sf.read(str(r.path), dtype="float32")[0] for r in results
                if r.name != "manifest.json"}

    mixes = mixtures(n_mix, ambience=ambience)
    rows = pipeline_rows(run, mixes, speech_stage(mixes), tmp)
    bed = ", a recorded ambience loop under the effects at -6..0 dB re them" if ambience else ""
    print(f"held-out real recordings: {len(mixes)} x {SECONDS:.0f} s at 48 kHz, music and effect at -6 +- 3 dB "
          f"re speech{bed}; SI-SDR in dB; baseline: DeepFilterNet3 alone (speech; me = input - it), HPSS of its "
          "residual (music, effect)")
    print_table(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", nargs="*", default=None, help="score these ONNX networks (network alone) on "
                    "the cached speech stage; with no file, the pipeline's stages in process on that cache")
    ap.add_argument("--role", default="eval", help="eval (held-out), calib (trains and calibrates) or tune (music and effects the "
                    "network never heard: the set the hybrid weight is chosen on)")
    ap.add_argument("-n", type=int, default=N_MIX)
    ap.add_argument("--cache", default=None, help="npz that keeps the mixtures and their speech stage")
    ap.add_argument("--ambience", action="store_true", help="the pipeline on the held-out set with a recorded "
                    "ambience loop under each mixture's effects")
    args = ap.parse_args()
    if args.weights is None and args.cache is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            pipeline_table(Path(tmp), args.n, args.ambience)
        return
    mixes, stages = cached(Path(args.cache) if args.cache else None, args.n, args.role)
    if not args.weights:
        print_table(cached_rows(mixes, stages))
        return
    base = baseline_scores(mixes, stages)
    b_m, b_e = np.mean([r["music"] for r in base]), np.mean([r["effect"] for r in base])
    print(f"baseline (HPSS on the DFN3 residual): music {b_m:6.2f}  effect {b_e:6.2f}", flush=True)
    for w in args.weights:
        rows = network_scores(mixes, stages, Path(w) if w else None)
        mu, ef = np.mean([r["music"] for r in rows]), np.mean([r["effect"] for r in rows])
        print(f"{w or 'shipped':<50} music {mu:6.2f} ({mu - b_m:+5.2f})  effect {ef:6.2f} ({ef - b_e:+5.2f})",
              flush=True)


if __name__ == "__main__":
    from bench.versions import versions

    print(versions(), flush=True)
    main()
