"""Cached conversations for the diarize clustering experiments (calib or eval split).

Each conversation is built once (``bench/diarize_corpus.py``), run through the pipeline's VAD
and CAM++ windows, and saved to ``var/diarize-cache/<calib-v3|eval-v3>/<k>.npz`` with its reference turns,
its audio and its DeepFilterNet3-denoised audio, and two sets of speech regions, windows and
embeddings (of the input and of the denoised audio in the same windows): VAD on the input (what
the baseline and Whisper use) and VAD on the denoised audio (what the pipeline's speaker turns
used before the segmentation model). The pipeline's turns now come from that model (computed when
scored) and its windows from the input's VAD speech (cached). A sweep costs a minute, not a Whisper run
per setting. The labels per window give the same turns as the pipeline
(``bench.diarize_heldout.window_turns`` is the pipeline's rule), so the DER here is the
pipeline's DER with the estimated count.

    python -m bench.diarize_cache calib 40       # fill the cache (the calibration set)
    python -m bench.diarize_cache eval 30        # the held-out conversations of bench.diarize_heldout
    python -m bench.diarize_cache eval 30 score  # DER and counts: baseline, before, the pipeline
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.diarize_corpus import conversation
from services.inference.diarization.clustering import speaker_windows
from services.inference.diarization.vad import VadOptions, speech_regions

ROOT = Path(__file__).resolve().parents[1] / "var" / "diarize-cache"
SEEDS = {"calib": 7100, "eval": 20260}   # bench.diarize_calibrate.SEED, bench.diarize_heldout.SEED
# calib-v2: the calib corpus with festival voices and telephone band (2026-12-03); calib-v3 and
# eval-v3: without the prompts that are not speech (tones, beeps, monkeys) and with the noise and
# music drawn apart from the prompts (2026-12-05). A cache of an older corpus must not be read as
# this one.
DIRS = {"calib": "calib-v3", "eval": "eval-v3"}


def unit(e: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as the pipeline normalises its summed embeddings."""
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-8)


@dataclass
class Item:
    name: str
    n_speakers: int
    snr_db: float
    music: bool
    ref: list[tuple[float, float, str]]
    regions: list[tuple[float, float]]
    windows: np.ndarray
    emb: np.ndarray            # (n, 192) CAM++ of the raw audio
    emb_dfn: np.ndarray        # (n, 192) CAM++ of the DeepFilterNet3 output
    audio: np.ndarray
    denoised: np.ndarray
    cregions: list[tuple[float, float]]   # the same, VAD on the denoised audio (the pipeline's turns)
    cwindows: np.ndarray
    cemb: np.ndarray
    cemb_dfn: np.ndarray
    telephone: bool = False    # calib: speech band-limited to 8 kHz (bench/diarize_corpus.py)
    _turns: list[tuple[float, float]] | None = None

    def pipeline(self) -> tuple[list[tuple[float, float]], np.ndarray, np.ndarray]:
        """As the pipeline works: turns over the speech the segmentation model hears in the
        denoised audio, windows over the input's VAD speech (since 2026-12-05, afternoon), each
        window's embedding the sum of input and denoised CAM++ (all cached but the turns)."""
        return self.turn_regions(), self.windows, unit(self.emb + self.emb_dfn)

    def segmentation_windows(self) -> tuple[list[tuple[float, float]], np.ndarray, np.ndarray]:
        """The pipeline from 2026-12-03 to 2026-12-05: windows over the segmentation model's
        speech too (their embeddings computed here, not cached)."""
        regions = self.turn_regions()
        windows = speaker_windows(regions)
        if len(windows) == 0:
            return regions, windows, np.zeros((0, 192), np.float32)
        return regions, windows, unit(sum(
            _models().infer("speaker_embedding", {"audio": x.astype(np.float32), "windows": windows})["embeddings"]
            for x in (self.audio, self.denoised)))

    def vad_pipeline(self) -> tuple[list[tuple[float, float]], np.ndarray, np.ndarray]:
        """The pipeline before the segmentation model: turns over the denoised audio's VAD speech,
        windows over the input's, cached embeddings summed."""
        return self.cregions, self.windows, unit(self.emb + self.emb_dfn)

    def turn_regions(self) -> list[tuple[float, float]]:
        """The pipeline's turn extent: ``speaker_segmentation`` on the denoised audio, in the
        pipeline's 60 s blocks, each heard after the 10 s before it."""
        from services.inference.pipelines.diarize import (
            BLOCK_S,
            RATE,
            TURN_CONTEXT_S,
            TURN_THRESHOLD,
            turn_speech,
        )

        if self._turns is None:
            block, context, den = BLOCK_S * RATE, int(TURN_CONTEXT_S * RATE), self.denoised.astype(np.float32)
            parts = [turn_speech(_models(), den[i:i + block], den[max(0, i - context):i])
                     for i in range(0, len(den), block)]
            probs = np.concatenate([p for p, _ in parts])
            self._turns = speech_regions(probs, parts[0][1], VadOptions(threshold=TURN_THRESHOLD))
        return self._turns


def _models():
    from tests.inference.conftest_diarize import client

    return client()


def _speech(models, audio: np.ndarray, embed_in: tuple[np.ndarray, ...]):
    out = models.infer("vad_ten", {"audio": audio})
    regions = speech_regions(out["probs"], float(out["hop_s"][0]), VadOptions())
    windows = speaker_windows(regions)
    embs = [models.infer("speaker_embedding", {"audio": x, "windows": windows})["embeddings"] for x in embed_in]
    return np.array(regions, np.float64).reshape(-1, 2), windows, *embs


def _build(role: str, k: int, seconds: float, path: Path) -> None:
    from services.inference.pipelines.diarize import denoise
    from tests.inference.conftest_diarize import client

    s = conversation(role, 2 + k % 5, SEEDS[role] + k, seconds)
    models = client()
    den = denoise(models, s.audio, np.zeros(0, np.float32))
    regions, windows, emb, emb_dfn = _speech(models, s.audio, (s.audio, den))
    cregions, cwindows, cemb, cemb_dfn = _speech(models, den, (s.audio, den))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, name=s.name, n_speakers=len(s.speakers), snr_db=s.snr_db, music=s.music_db is not None,
             ref_t=np.array([(p.start, p.end) for p in s.pieces], np.float64).reshape(-1, 2),
             ref_s=np.array([p.speaker for p in s.pieces]), regions=regions, windows=windows, emb=emb,
             emb_dfn=emb_dfn, audio=s.audio, denoised=den, cregions=cregions, cwindows=cwindows, cemb=cemb,
             cemb_dfn=cemb_dfn, telephone=bool(s.meta.get("telephone")))


def load_set(role: str, n: int) -> list[Item]:
    """The first ``n`` conversations of the split (built and cached on first use), with the same
    seeds and lengths as bench.diarize_calibrate (calib) and bench.diarize_heldout (eval)."""
    rng = np.random.default_rng(SEEDS[role])
    items = []
    for k in range(n):
        seconds = float(rng.uniform(30, 90))
        path = ROOT / DIRS[role] / f"{k:03d}.npz"
        if not path.exists():
            _build(role, k, seconds, path)
            print(f"  cached {role} {k}", flush=True)
        z = np.load(path)
        items.append(Item(str(z["name"]), int(z["n_speakers"]), float(z["snr_db"]), bool(z["music"]),
                          [(float(a), float(b), str(c)) for (a, b), c in zip(z["ref_t"], z["ref_s"], strict=True)],
                          [(float(a), float(b)) for a, b in z["regions"]], z["windows"], z["emb"], z["emb_dfn"],
                          z["audio"], z["denoised"], [(float(a), float(b)) for a, b in z["cregions"]],
                          z["cwindows"], z["cemb"], z["cemb_dfn"],
                          bool(z["telephone"]) if "telephone" in z.files else False))
    return items


def report(items: list[Item]) -> None:
    """Pooled DER and exact counts per group: the fixed-cut baseline, the pipeline before issue
    16's denoised front end (input VAD and CAM++), the pipeline before the segmentation model
    (windows on the input's VAD speech, turns on the denoised audio's), the pipeline of
    2026-12-03..05 (windows on the segmentation model's speech too), and the pipeline now."""
    from bench.diarize_heldout import baseline_labels, window_turns
    from services.inference.diarization.clustering import cluster
    from tools.metrics import der

    rows = []
    for it in items:
        runs = {"baseline": (it.regions, it.windows, baseline_labels(it.emb)),
                "before": (it.regions, it.windows, cluster(it.emb))}
        for name, (regions, windows, emb) in (("Timbr", it.pipeline()), ("segmentation windows", it.segmentation_windows()),
                                              ("VAD speech", it.vad_pipeline())):
            runs[name] = (regions, windows, cluster(emb) if len(emb) else np.zeros(0, np.int64))
        rows.append((it, {k: (der(it.ref, window_turns(r, w, lab)), len(set(lab.tolist())))
                          for k, (r, w, lab) in runs.items()}))
    groups = {"all": lambda it: True, "SNR < 10 dB": lambda it: it.snr_db < 10,
              "SNR >= 10 dB": lambda it: it.snr_db >= 10, "with music": lambda it: it.music,
              "2-3 speakers": lambda it: it.n_speakers <= 3, "4-6 speakers": lambda it: it.n_speakers >= 4}
    if any(it.telephone for it in items):
        groups["telephone band"] = lambda it: it.telephone
    for name, sel in groups.items():
        sub = [r for r in rows if sel(r[0])]
        tot = sum(r[1]["Timbr"][0]["scored_s"] for r in sub)
        cells = []
        for k in ("Timbr", "segmentation windows", "VAD speech", "before", "baseline"):
            d = {m: sum(r[1][k][0][m] * r[1][k][0]["scored_s"] for r in sub) / tot
                 for m in ("der", "miss", "false_alarm", "confusion")}
            exact = sum(r[1][k][1] == r[0].n_speakers for r in sub)
            cells.append(f"{k} DER {d['der']:6.2%} (miss {d['miss']:5.2%} fa {d['false_alarm']:5.2%} "
                         f"conf {d['confusion']:5.2%}) count {exact}/{len(sub)}")
        print(f"{name} ({len(sub)}, {tot:.0f} s): " + " | ".join(cells))
    print("counts (true -> Timbr): " + ", ".join(f"{r[0].n_speakers}->{r[1]['Timbr'][1]}" for r in rows))


if __name__ == "__main__":
    data = load_set(sys.argv[1], int(sys.argv[2]))
    if sys.argv[3:] == ["score"]:
        report(data)
