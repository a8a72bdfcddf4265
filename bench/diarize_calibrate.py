"""Calibrate the diarize clustering constants on the CALIB split only.

Builds conversations like the held-out ones (``bench/diarize_corpus.py``) from the calib split
(Allison's recordings, espeak-ng voices, calib ambience and music), embeds them once with the
pipeline's VAD and CAM++ windows, then sweeps:
- the baseline's single agglomerative cut (``BASELINE_THRESHOLD`` in bench/diarize_heldout.py);
- the pipeline's neighbour count (``MIN_KEEP``) and windows per speaker (``MIN_WINDOWS``) in
  services/inference/diarization/clustering.py.
It prints DER (no collar, overlap counted; speaker labels per window, so VAD and Whisper play
no part) and the share of exact counts for each setting.

    python -m bench.diarize_calibrate            # 20 conversations
    CALIB_CACHE=/tmp/dc python -m bench.diarize_calibrate   # keep the embeddings for the next sweep
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from unittest import mock

import numpy as np

from bench.diarize_corpus import conversation
from bench.diarize_heldout import baseline_labels, embed, reference, window_turns
from services.inference.diarization import clustering
from tools.metrics import der

SEED = 7100   # calib seeds; the held-out bench uses bench.diarize_heldout.SEED


def calib_set(n: int, cache: Path | None = None) -> list[tuple]:
    """(sample, regions, windows, embeddings) per conversation; ``cache`` keeps them across runs."""
    rng = np.random.default_rng(SEED)
    out = []
    for k in range(n):
        s = conversation("calib", 2 + k % 5, SEED + k, float(rng.uniform(30, 90)))
        f = cache / f"{s.name}.pkl" if cache else None
        if f is not None and f.exists():
            out.append((s, *pickle.loads(f.read_bytes())))
            continue
        item = embed(s.audio)
        if f is not None:
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(pickle.dumps(item))
        out.append((s, *item))
        print(f"  embedded {s.name} ({s.duration:.0f} s)", flush=True)
    return out


def score(data, labeler) -> tuple[float, float]:
    errs = tot = 0.0
    exact = 0
    for s, regions, windows, emb in data:
        labels = labeler(emb)
        d = der(reference(s), window_turns(regions, windows, labels))
        errs += d["der"] * d["scored_s"]
        tot += d["scored_s"]
        exact += len(set(labels.tolist())) == len(s.speakers)
    return errs / tot, exact / len(data)


def main() -> None:
    cache = os.environ.get("CALIB_CACHE")
    data = calib_set(int(os.environ.get("CALIB_CONVS", "20")), Path(cache) if cache else None)
    print(f"calib: {len(data)} conversations, {sum(x[0].duration for x in data):.0f} s")
    for t in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
        d, c = score(data, lambda e, t=t: baseline_labels(e, t))
        print(f"baseline cut {t:.2f}: DER {d:6.2%} count exact {c:5.1%}", flush=True)
    for keep in (4, 5, 6, 7, 8, 10):
        for mw in (2, 3, 4):
            with mock.patch.object(clustering, "MIN_KEEP", keep), mock.patch.object(clustering, "MIN_WINDOWS", mw):
                d, c = score(data, lambda e: clustering.cluster(e))
            print(f"pipeline MIN_KEEP {keep:2d} MIN_WINDOWS {mw}: DER {d:6.2%} count exact {c:5.1%}", flush=True)

if __name__ == "__main__":
    main()
