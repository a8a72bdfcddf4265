"""Calibrate the diarize clustering constants on the CALIB split only.

Builds conversations like the held-out ones (``bench/diarize_corpus.py``) from the calib split
(Allison's recordings and 13 festival voices, half of the conversations in the telephone band;
calib ambience and music), embeds them once and caches them in ``var/diarize-cache/calib-v3``
(``bench/diarize_cache.py``), then sweeps:
- the baseline's single agglomerative cut (``BASELINE_THRESHOLD`` in bench/diarize_heldout.py),
  on the input's VAD regions and CAM++ embeddings;
- what the pipeline clusters: VAD on the input or on the DeepFilterNet3-denoised audio, CAM++
  of the input, of the denoised audio or their sum, turns cut from either VAD;
- the pipeline's neighbour graph in services/inference/diarization/clustering.py: its least
  neighbour count (``MIN_KEEP``), how many counts from there NME-SC chooses among
  (``KEEP_CHOICES``; 1 = that count alone) and whether a link weighs 1 or its cosine
  (``WEIGHTED``), on the pipeline's features (turns from the segmentation model, windows over
  the input's VAD speech) or with turns and windows on the denoised audio's VAD speech;
- how far the silhouette may raise the eigengap's count (``SILHOUETTE_UP``; 0 = the eigengap's
  count), on the pipeline's windows with the landed graph.
It prints DER (no collar, overlap counted; speaker labels per window, so Whisper plays no part)
and the share of exact counts (with the under- and over-counts) for each setting.

    python -m bench.diarize_calibrate            # 40 conversations (CALIB_CONVS=n for another n)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from unittest import mock

import numpy as np

from bench.diarize_cache import Item, load_set, unit
from bench.diarize_heldout import baseline_labels, window_turns
from services.inference.diarization import clustering
from tools.metrics import der

Features = Callable[[Item], tuple[list[tuple[float, float]], np.ndarray, np.ndarray]]


FEATURES: dict[str, Features] = {
    "input VAD, input CAM++ (before)": lambda it: (it.regions, it.windows, it.emb),
    "input VAD, denoised CAM++": lambda it: (it.regions, it.windows, it.emb_dfn),
    "input VAD, sum": lambda it: (it.regions, it.windows, unit(it.emb + it.emb_dfn)),
    "denoised VAD, input CAM++": lambda it: (it.cregions, it.cwindows, it.cemb),
    "denoised VAD, denoised CAM++": lambda it: (it.cregions, it.cwindows, it.cemb_dfn),
    "denoised VAD, sum": lambda it: (it.cregions, it.cwindows, unit(it.cemb + it.cemb_dfn)),
    "segmentation speech, sum (12-03..12-05)": Item.segmentation_windows,
    "segmentation turns, input VAD windows, sum (pipeline)": Item.pipeline,
}


def score(data: list[Item], labeler, features: Features = FEATURES["input VAD, input CAM++ (before)"]
          ) -> tuple[float, float, int, int]:
    """(pooled DER, share of exact counts, undercounts, overcounts)."""
    errs = tot = 0.0
    exact = under = over = 0
    for it in data:
        regions, windows, emb = features(it)
        labels = labeler(emb) if len(emb) else np.zeros(0, np.int64)
        d = der(it.ref, window_turns(regions, windows, labels))
        errs += d["der"] * d["scored_s"]
        tot += d["scored_s"]
        found = len(set(labels.tolist()))
        exact += found == it.n_speakers
        under += found < it.n_speakers
        over += found > it.n_speakers
    return errs / tot, exact / len(data), under, over


def _line(name: str, result: tuple[float, float, int, int]) -> str:
    d, c, under, over = result
    return f"{name:58s}: DER {d:6.2%} count exact {c:5.1%} (under {under}, over {over})"


def main() -> None:
    data = load_set("calib", int(os.environ.get("CALIB_CONVS", "40")))
    print(f"calib: {len(data)} conversations, {sum(len(x.audio) for x in data) / 16000:.0f} s")
    for t in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
        print(_line(f"baseline cut {t:.2f}", score(data, lambda e, t=t: baseline_labels(e, t))), flush=True)
    features = {name: _once(f, data) for name, f in FEATURES.items()}   # the pipeline's embeds once
    for name, f in features.items():
        print(_line(f"spectral, {name}", score(data, clustering.cluster, f)), flush=True)
    for up in (0, 1, 2, 3):
        with mock.patch.object(clustering, "SILHOUETTE_UP", up):
            result = score(data, clustering.cluster, features["segmentation turns, input VAD windows, sum (pipeline)"])
        print(_line(f"pipeline, SILHOUETTE_UP {up}", result), flush=True)
    for name in ("segmentation turns, input VAD windows, sum (pipeline)", "denoised VAD, sum"):
        for weighted in (False, True):
            for choices in (1, 5):
                for keep in (5, 6, 7, 8, 10, 12):
                    with mock.patch.object(clustering, "MIN_KEEP", keep), \
                            mock.patch.object(clustering, "KEEP_CHOICES", choices), \
                            mock.patch.object(clustering, "WEIGHTED", weighted):
                        result = score(data, clustering.cluster, features[name])
                    print(_line(f"{name[:19]}, WEIGHTED {weighted!s:5} MIN_KEEP {keep:2d} "
                                f"KEEP_CHOICES {choices}", result), flush=True)


def _once(features: Features, data: list[Item]) -> Features:
    """``features`` computed once per conversation (the pipeline's embeds CAM++ when called)."""
    done = {id(it): features(it) for it in data}
    return lambda it: done[id(it)]


if __name__ == "__main__":
    main()
