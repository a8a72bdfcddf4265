"""Held-out diarize bench: real voices, ambience and music nobody calibrated on, against naive baselines.

Corpus (``bench/diarize_corpus.py``, built in memory from bench/heldout, eval split):
conversations of 2-6 recorded voices (30-90 s, pauses, a little overlap, 0-20 dB SNR ambience,
half of them with a music bed at -20..-6 dB) for DER and the speaker count, and one-voice
recordings with long turns for the WER (the eval voices with transcripts are each alone in
their language). Then the one recorded conversation (``bench.diarize_corpus.recorded``: two
people on a telephone line, 30 s), as recorded and under eval ambience at 10, 5 and 0 dB SNR
(``BENCH_HELDOUT_RECORDED=0`` leaves it out).

Baselines, in the same run on the same files:
- words: faster-whisper base (the same weights) on the whole file, its defaults (beam 5,
  language detected, conditioned on previous text; its sampled retries from a fixed random state);
- speakers: the pipeline's own VAD regions and CAM++ 1.5 s windows, agglomerative clustering
  (cosine, average linkage) cut at one fixed distance, ``BASELINE_THRESHOLD``, the best single
  cut on the calib split (``python -m bench.diarize_calibrate``).

    python -m bench diarize                      # the synthetic tables, then this section
    python -m bench.diarize_heldout              # this section alone
    BENCH_HELDOUT_CONVS=6 BENCH_HELDOUT_MONO=2 python -m bench.diarize_heldout   # smaller
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.diarize_corpus import RATE, RECORDED_SNRS, Sample, conversation, monologue, recorded
from services.inference.diarization.clustering import speaker_windows
from services.inference.diarization.vad import VadOptions, speech_regions
from tests.inference.conftest_diarize import client, run_diarize
from tools.metrics import der, wer

BASELINE_THRESHOLD = 0.45    # the best single cut on the calib split (bench/diarize_calibrate.py)
SEED = 20260
CALIB_SEED = 33000
COLLAR_S = 0.25              # printed beside the no-collar DER: NIST md-eval's collar, to show what is edges


def eval_set(n_convs: int, n_mono: int, role: str = "eval", seed: int = SEED) -> tuple[list[Sample], list[Sample]]:
    """Conversations with 2..6 speakers in turn, 30-90 s; monologues of 40-70 s."""
    rng = np.random.default_rng(seed)
    convs = [conversation(role, 2 + k % 5, seed + k, float(rng.uniform(30, 90))) for k in range(n_convs)]
    monos = [monologue(role, seed + 100 + k, float(rng.uniform(40, 70))) for k in range(n_mono)]
    return convs, monos


def reference(sample: Sample) -> list[tuple[float, float, str]]:
    return [(p.start, p.end, p.speaker) for p in sample.pieces]


def embed(audio: np.ndarray) -> tuple[list[tuple[float, float]], np.ndarray, np.ndarray]:
    """The pipeline's default VAD regions, its CAM++ windows and their embeddings."""
    models = client()
    out = models.infer("vad_ten", {"audio": audio})
    regions = speech_regions(out["probs"], float(out["hop_s"][0]), VadOptions())
    windows = speaker_windows(regions)
    if len(windows) == 0:
        return regions, windows, np.zeros((0, 192), np.float32)
    emb = models.infer("speaker_embedding", {"audio": audio, "windows": windows})["embeddings"]
    return regions, windows, emb


def baseline_labels(emb: np.ndarray, threshold: float = BASELINE_THRESHOLD) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    if len(emb) < 2:
        return np.zeros(len(emb), np.int64)
    return AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, metric="cosine",
                                   linkage="average").fit_predict(emb)


def window_turns(regions, windows: np.ndarray, labels: np.ndarray) -> list[tuple[float, float, str]]:
    """Speech regions labelled by the nearest window centre (the same rule as the pipeline)."""
    from services.inference.diarization.clustering import SpeakerTimeline

    timeline = SpeakerTimeline(windows, labels)
    out = []
    for s, e in regions:
        points = timeline.change_points(s, e)
        for k, (t, spk) in enumerate(points):
            out.append((t, points[k + 1][0] if k + 1 < len(points) else e, str(spk)))
    return out


_WHISPER = None


def whisper_whole(audio: np.ndarray) -> str:
    """Baseline words: faster-whisper base on the whole file, its defaults (beam 5, sampled retries,
    language detected), from the same random state on every call (the service's seeded model), so
    that the baseline repeats from run to run."""
    global _WHISPER
    if _WHISPER is None:
        from services.inference.models.whisper import Whisper

        _WHISPER = Whisper(cpu_threads=int(os.environ.get("TIMBR_CPU_THREADS", "2")))
        _WHISPER.load()
    segments, _ = _WHISPER.seeded().transcribe(audio, beam_size=5)
    return " ".join(s.text for s in segments)


def _pct(x: float) -> str:
    return f"{x:6.2%}"


def main() -> None:
    n_convs = int(os.environ.get("BENCH_HELDOUT_CONVS", "30"))  # 15 swung the count from 12/15 to 6/15 on a redraw
    n_mono = int(os.environ.get("BENCH_HELDOUT_MONO", "12"))  # 6 moved the mean by a point a run
    role = os.environ.get("BENCH_HELDOUT_ROLE", "eval")        # calib: the same measures where constants are set
    with_recorded = role == "eval" and os.environ.get("BENCH_HELDOUT_RECORDED", "1") == "1"
    t0 = time.perf_counter()
    convs, monos = eval_set(n_convs, n_mono, role, SEED if role == "eval" else CALIB_SEED)
    audio_s = sum(s.duration for s in convs + monos)
    print(f"held-out ({role} split): {len(convs)} conversations of 2-6 recorded voices, {len(monos)} one-voice "
          f"recordings, {audio_s:.0f} s; SNR {min((s.snr_db for s in convs + monos), default=0):.0f}-"
          f"{max((s.snr_db for s in convs + monos), default=0):.0f} dB, {sum(s.music_db is not None for s in convs + monos)} "
          f"with music (built in {time.perf_counter() - t0:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = [score_conversation(s, tmp / f"conv-{i}") for i, s in enumerate(convs)]
        wrows = []
        for i, s in enumerate(monos):
            path = tmp / f"{s.name}.wav"
            sf.write(str(path), s.audio, RATE, subtype="PCM_16")
            res = run_diarize(tmp / f"mono-{i}", path).result
            audio = sf.read(str(path), dtype="float32")[0]                  # the same 16-bit file
            w = wer(s.text, " ".join(x["word"] for x in res["words"]))
            wb = wer(s.text, whisper_whole(audio))
            nb = len(set(baseline_labels(embed(audio)[2]).tolist()))           # one voice: the count must be 1
            wrows.append((s, w, wb, res["num_speakers"], nb))
            print(f"  {s.name:22s} {s.duration:5.1f} s SNR {s.snr_db:4.1f} dB: WER {w:6.2%} (baseline {wb:6.2%}), "
                  f"speakers {res['num_speakers']} (baseline {nb}) of 1", flush=True)
        recorded_rows = []
        if with_recorded:
            print("the recorded telephone conversation (2 speakers, 30 s), as recorded and under eval ambience:")
            recorded_rows = [score_conversation(recorded(snr), tmp / f"rec-{i}") for i, snr in enumerate(RECORDED_SNRS)]
    summary(rows, wrows, role)
    summary(recorded_rows, [], "recorded")


def score_conversation(s: Sample, work: Path) -> tuple:
    """The pipeline and the baseline on one conversation (the same 16-bit file), printed; the row
    ``summary`` reads."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{s.name}.wav"
    sf.write(str(path), s.audio, RATE, subtype="PCM_16")
    res = run_diarize(work / "out", path).result
    ref = reference(s)
    hyp = [(t["start"], t["end"], t["speaker"]) for t in res["turns"]]
    regions, windows, emb = embed(sf.read(str(path), dtype="float32")[0])
    base = window_turns(regions, windows, baseline_labels(emb))
    d, b = der(ref, hyp), der(ref, base)
    nb = len({x[2] for x in base})
    print(f"  {s.name:22s} {s.duration:5.1f} s SNR {s.snr_db:4.1f} dB music "
          f"{'none' if s.music_db is None else f'{s.music_db:.0f} dB':>6s}: DER {d['der']:6.2%} "
          f"(baseline {b['der']:6.2%}), speakers {res['num_speakers']} (baseline {nb}) of "
          f"{len(s.speakers)}", flush=True)
    # the same with NIST md-eval's 0.25 s collar at every reference edge: how much is edges
    return (s, d, b, res["num_speakers"], nb, der(ref, hyp, collar=COLLAR_S), der(ref, base, collar=COLLAR_S))


def summary(rows, wrows, role: str = "eval") -> None:
    def pooled(k: int, key: str, sel=lambda r: True) -> float:
        sub = [r for r in rows if sel(r)]
        tot = sum(r[k]["scored_s"] for r in sub) or 1.0
        return sum(r[k][key] * r[k]["scored_s"] for r in sub) / tot

    count = sum(r[3] == len(r[0].speakers) for r in rows)
    count_b = sum(r[4] == len(r[0].speakers) for r in rows)
    noisy = [r for r in rows if r[0].snr_db < 10]
    if not rows and not wrows:
        return
    print(f"{'held-out' if role == 'eval' else role:26s} {'Timbr':>8s} {'baseline':>9s} {'diff':>8s}")
    if rows:
        for key in ("der", "miss", "false_alarm", "confusion"):
            a, b = pooled(1, key), pooled(2, key)
            print(f"{key:26s} {_pct(a):>8s} {_pct(b):>9s} {a - b:+8.2%}")
        a, b = pooled(5, "der"), pooled(6, "der")
        print(f"{f'der, {COLLAR_S} s collar':26s} {_pct(a):>8s} {_pct(b):>9s} {a - b:+8.2%}")
        print(f"{'count exact':26s} {count:>4d}/{len(rows):<3d} {count_b:>5d}/{len(rows):<3d} {count - count_b:+8d}")
        print(f"{'count exact, SNR < 10 dB':26s} {sum(r[3] == len(r[0].speakers) for r in noisy):>4d}/{len(noisy):<3d} "
              f"{sum(r[4] == len(r[0].speakers) for r in noisy):>5d}/{len(noisy):<3d}")
    if wrows:
        w, wb = float(np.mean([r[1] for r in wrows])), float(np.mean([r[2] for r in wrows]))
        print(f"{'WER (mean of recordings)':26s} {_pct(w):>8s} {_pct(wb):>9s} {w - wb:+8.2%}")
        one, one_b = sum(r[3] == 1 for r in wrows), sum(r[4] == 1 for r in wrows)
        print(f"{'one voice read as one':26s} {one:>4d}/{len(wrows):<3d} {one_b:>5d}/{len(wrows):<3d} {one - one_b:+8d}")


if __name__ == "__main__":
    from bench.versions import versions

    print(versions(), flush=True)
    main()
