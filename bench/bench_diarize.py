"""Diarize bench: a generated corpus of 2-5 speaker conversations with ground truth, then the
held-out section (bench/diarize_heldout.py: recorded voices, ambience and music, baselines beside).

For each ``vad_type`` it runs the whole pipeline (default parameters, ``num_speakers`` null,
``detect_gender`` on); then a harder corpus (0.1-0.3 s gaps, short replies) with ten-vad, with
the count estimated and with the true count given (``+oracle n``); then the plain corpus again under stationary noise
(``BENCH_DIARIZE_NOISE``: white and red at 10 dB SNR, pink at 5 dB, where a fixed merge
threshold once split each voice in two to four). Each row prints DER (0.25 s collar and none),
speaker-count accuracy, the naive speaker baseline on the same file (``bench.diarize_heldout``:
CAM++ windows on the VAD speech, one fixed agglomerative cut; DER without collar and its exact
counts), WER, faster-whisper base's WER on the same whole file (the words' baseline), gender
accuracy and the realtime factor (pipeline wall time / audio duration, models already loaded).
The corpus uses other seeds than the ones the clustering thresholds were tuned on.

    python -m bench diarize          # or: make bench
    BENCH_DIARIZE_SPEAKERS=2,3 BENCH_DIARIZE_SEEDS=1 python -m bench diarize   # smaller
    BENCH_DIARIZE_NOISE= python -m bench diarize      # no noisy rows
    BENCH_DIARIZE_LONG=4,16 python -m bench diarize   # also: long files, peak memory (~4 min more)
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.inference.audiogen import SENTENCES, SHORT, VOICES, Conversation, conversation, noisy
from tests.inference.conftest_diarize import run_diarize
from tools.metrics import der, wer

VAD_TYPES = ("ten-vad", "silero", "webrtc")
NOISE = os.environ.get("BENCH_DIARIZE_NOISE", "white:10,red:10,pink:5")   # kind:SNR dB, comma-separated
TURNS_PER_SPEAKER = 3


def corpus(speakers: list[int], seeds: int, hard: bool = False):
    """``hard``: 0.1-0.3 s gaps and about one turn in three a short reply ("Okay.", "Sure.")."""
    out = []
    for n in speakers:
        for s in range(seeds):
            seed = 1000 + 17 * n + s + (500 if hard else 0)
            rng = np.random.default_rng(seed)
            voices = [VOICES[i] for i in rng.permutation(len(VOICES))[:n]]
            if hard:
                out.append(conversation(voices, TURNS_PER_SPEAKER * n, seed=seed, gap=(0.1, 0.3),
                                        sentences=SENTENCES[:16] + SHORT))
            else:
                out.append(conversation(voices, TURNS_PER_SPEAKER * n, seed=seed))
    return out


def gender_hits(conv, res) -> tuple[int, int]:
    """Per true speaker: the hypothesis speaker overlapping it most, and whether its gender is right."""
    genders = {s["id"]: s.get("gender") for s in res["speakers"]}
    hits = total = 0
    for k, voice in enumerate(conv.voices):
        overlap: dict[str, float] = {}
        for t in (t for t in conv.turns if t.speaker == k):
            for h in res["turns"]:
                o = min(t.end, h["end"]) - max(t.start, h["start"])
                if o > 0:
                    overlap[h["speaker"]] = overlap.get(h["speaker"], 0.0) + o
        total += 1
        if overlap:
            hits += genders[max(overlap, key=overlap.get)] == voice.gender
    return hits, total


def main() -> None:
    speakers = [int(x) for x in os.environ.get("BENCH_DIARIZE_SPEAKERS", "2,3,4,5").split(",")]
    seeds = int(os.environ.get("BENCH_DIARIZE_SEEDS", "2"))
    convs = corpus(speakers, seeds)
    total_audio = sum(c.duration for c in convs)
    print(f"corpus: {len(convs)} conversations, {speakers} speakers x {seeds} seeds, "
          f"{total_audio:.0f} s of audio, espeak-ng voices {[v.name for v in VOICES]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = [c.write(tmp / f"c{i}.wav") for i, c in enumerate(convs)]
        run_diarize(tmp / "warm", paths[0], vad_type="ten-vad")  # load every model once
        for vad_type in VAD_TYPES:
            run_diarize(tmp / f"warm-{vad_type}", paths[0], vad_type=vad_type)
        print(f"{'vad_type':9s} {'DER c0.25':>9s} {'DER c0':>7s} {'miss':>6s} {'FA':>6s} {'conf':>6s} "
              f"{'count ok':>8s} {'baseline DER c0':>15s} {'count ok':>8s} {'WER':>6s} {'Whisper alone':>13s} "
              f"{'gender':>7s} {'RTF':>6s}")
        for vad_type in VAD_TYPES:
            print(score(vad_type, convs, paths, tmp, {"vad_type": vad_type}), flush=True)
        hard = corpus([2, 3, 4], 1, hard=True)
        hard_paths = [c.write(tmp / f"h{i}.wav") for i, c in enumerate(hard)]
        print(f"hard corpus: {len(hard)} conversations (2-4 speakers), 0.1-0.3 s gaps, short replies, "
              f"{sum(c.duration for c in hard):.0f} s")
        print(score("ten-vad", hard, hard_paths, tmp / "hard", {}), flush=True)
        print(score("+oracle n", hard, hard_paths, tmp / "hard-n", {}, oracle=True), flush=True)
        for k, (kind, snr) in enumerate(x.split(":") for x in NOISE.split(",") if x):
            loud = [Conversation(noisy(c, float(snr), kind, seed=k), c.turns, c.voices) for c in convs]
            label = f"{kind} {float(snr):g} dB"
            loud_paths = [c.write(tmp / f"{kind}{snr}-{i}.wav") for i, c in enumerate(loud)]
            print(score(label, loud, loud_paths, tmp / label.replace(" ", "-"), {}), flush=True)
    from bench.diarize_heldout import main as heldout

    heldout()
    for minutes in [float(x) for x in os.environ.get("BENCH_DIARIZE_LONG", "").split(",") if x]:
        # A fresh process per length, so each peak RSS is its own.
        out = subprocess.run([sys.executable, "-m", "bench.bench_diarize", "long", str(minutes)],
                             capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


def long_file(minutes: float) -> None:
    """One 3-speaker conversation tiled to ``minutes`` (FLAC), RSS sampled every 0.2 s."""
    import soundfile as sf

    conv = conversation(list(VOICES[:3]), 9, seed=7)
    n = int(minutes * 60 * conv.rate)
    peak = [0.0]
    stop = threading.Event()

    def rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.2)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.flac"
        with sf.SoundFile(str(path), "w", conv.rate, 1) as f:
            for i in range(0, n, len(conv.audio)):
                f.write(conv.audio[: min(len(conv.audio), n - i)])
        threading.Thread(target=sample, daemon=True).start()
        t = time.perf_counter()
        res = run_diarize(Path(tmp) / "out", path).result
        wall = time.perf_counter() - t
        stop.set()
    print(f"long file {minutes:g} min: wall {wall:.1f} s, RTF {wall / (n / conv.rate):.3f}, "
          f"speakers {res['num_speakers']}, words {len(res['words'])}, peak RSS {peak[0]:.0f} MiB, "
          f"after {rss():.0f} MiB")


def score(label, convs, paths, tmp: Path, params, oracle: bool = False) -> str:
    ders, ders0, miss, fa, conf, scored, base = [], [], [], [], [], [], []
    counts = base_counts = g_hit = g_tot = 0
    wers, base_wers, wall = [], [], 0.0
    for i, (conv, path) in enumerate(zip(convs, paths, strict=True)):
        extra = {"num_speakers": len(conv.voices)} if oracle else {}
        t = time.perf_counter()
        res = run_diarize(tmp / f"{label}-{i}", path, detect_gender=True, **params, **extra).result
        wall += time.perf_counter() - t
        ref = [(x.start, x.end, str(x.speaker)) for x in conv.turns]
        hyp = [(x["start"], x["end"], x["speaker"]) for x in res["turns"]]
        d = der(ref, hyp, collar=0.25)
        scored.append(d["scored_s"])
        ders.append(d["der"] * d["scored_s"])
        miss.append(d["miss"] * d["scored_s"])
        fa.append(d["false_alarm"] * d["scored_s"])
        conf.append(d["confusion"] * d["scored_s"])
        d0 = der(ref, hyp)
        ders0.append((d0["der"] * d0["scored_s"], d0["scored_s"]))
        counts += res["num_speakers"] == len(conv.voices)
        base_turns = _baseline_turns(str(path))
        b = der(ref, base_turns)
        base.append((b["der"] * b["scored_s"], b["scored_s"]))
        base_counts += len({x[2] for x in base_turns}) == len(conv.voices)
        text = " ".join(x.text for x in conv.turns)
        wers.append(wer(text, " ".join(w["word"] for w in res["words"])))
        base_wers.append(wer(text, _whisper_alone(str(path))))
        h, n = gender_hits(conv, res)
        g_hit, g_tot = g_hit + h, g_tot + n
    total = sum(scored)
    audio = sum(c.duration for c in convs)
    return (f"{label:9s} {sum(ders) / total:9.2%} {sum(a for a, _ in ders0) / sum(b for _, b in ders0):7.2%} "
            f"{sum(miss) / total:6.2%} {sum(fa) / total:6.2%} {sum(conf) / total:6.2%} "
            f"{counts:>4d}/{len(convs):<3d} {sum(a for a, _ in base) / sum(b for _, b in base):15.2%} "
            f"{base_counts:>4d}/{len(convs):<3d} {np.mean(wers):6.2%} {np.mean(base_wers):13.2%} {g_hit:>3d}/{g_tot:<3d} "
            f"{wall / audio:6.3f}")


@functools.cache
def _baseline_turns(path: str) -> list[tuple[float, float, str]]:
    """The speakers' baseline (``bench.diarize_heldout``) on the same 16-bit file."""
    from bench.diarize_heldout import baseline_labels, embed, window_turns

    regions, windows, emb = embed(sf.read(path, dtype="float32")[0])
    return window_turns(regions, windows, baseline_labels(emb))


@functools.cache
def _whisper_alone(path: str) -> str:
    """The words' baseline: faster-whisper base on the whole file (``bench.diarize_heldout``)."""
    from bench.diarize_heldout import whisper_whole

    return whisper_whole(sf.read(path, dtype="float32")[0])


if __name__ == "__main__":
    if sys.argv[1:2] == ["long"]:
        long_file(float(sys.argv[2]))
    else:
        main()
