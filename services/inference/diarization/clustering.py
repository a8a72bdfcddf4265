"""Speaker windows over speech, clustering of their embeddings, and time -> speaker look-ups.

Windows: 1.5 s long, 0.75 s hop, inside each speech region (a region shorter than a window
gets one window of its own length, if at least ``MIN_WINDOW``).

Clustering (scikit-learn ``AgglomerativeClustering``, cosine, average linkage) of the
L2-normalised CAM++ embeddings:
- ``num_speakers`` given: exactly that many clusters (when there are at least that many windows);
- ``None``: the count is estimated. The dendrogram is cut low, at cosine distance
  ``THRESHOLD`` (over-segmenting on purpose); clusters with fewer than ``MIN_WINDOWS`` windows
  or ``MIN_SHARE`` of them are folded into their nearest large cluster (a few stray windows are
  not a speaker); then clusters whose centroids are more similar than ``MERGE`` merge, closest
  pair first. Both constants were calibrated on generated conversations (docs/diarize.md).
Then two passes of centroid re-assignment (k-means refinement) sharpen the boundaries.
"""

from __future__ import annotations

import numpy as np

WINDOW, HOP, MIN_WINDOW = 1.5, 0.75, 0.4
THRESHOLD = 0.3          # over-segmenting first cut (cosine distance, average linkage)
MERGE = 0.84             # then clusters whose centroids are closer than this (cosine) merge
MIN_SHARE = 0.05         # a cluster needs this share of the windows ...
MAX_CLUSTERED = 2000     # longer inputs: cluster an even subsample, assign the rest to centroids
MIN_WINDOWS = 3          # ... and at least this many (about 3 s of speech) to be a speaker


def speaker_windows(regions: list[tuple[float, float]]) -> np.ndarray:
    """(n, 2) window start/end seconds covering the speech regions."""
    out = []
    for start, end in regions:
        length = end - start
        if length < MIN_WINDOW:
            continue
        if length <= WINDOW:
            out.append((start, end))
            continue
        n = int(np.ceil((length - WINDOW) / HOP)) + 1
        for k in range(n):
            s = min(start + k * HOP, end - WINDOW)
            out.append((s, s + WINDOW))
    return np.array(out, np.float32).reshape(-1, 2)


def _refine(emb: np.ndarray, labels: np.ndarray, iterations: int = 2) -> np.ndarray:
    for _ in range(iterations):
        ids = np.unique(labels)
        cents = np.stack([emb[labels == k].mean(0) for k in ids])
        cents /= np.linalg.norm(cents, axis=1, keepdims=True) + 1e-8
        new = ids[np.argmax(emb @ cents.T, axis=1)]
        if len(np.unique(new)) < len(ids):  # never lose a speaker to refinement
            break
        labels = new
    return labels


def _merge_close(emb: np.ndarray, labels: np.ndarray, merge: float) -> np.ndarray:
    while True:
        ids = np.unique(labels)
        if len(ids) < 2:
            return labels
        cents = np.stack([emb[labels == k].mean(0) for k in ids])
        cents /= np.linalg.norm(cents, axis=1, keepdims=True) + 1e-8
        sim = cents @ cents.T
        np.fill_diagonal(sim, -1)
        a, b = np.unravel_index(np.argmax(sim), sim.shape)
        if sim[a, b] < merge:
            return labels
        labels = np.where(labels == ids[b], ids[a], labels)


def cluster(emb: np.ndarray, num_speakers: int | None, threshold: float = THRESHOLD,
            merge: float = MERGE, min_windows: int = MIN_WINDOWS) -> np.ndarray:
    """Cluster labels (n,) for L2-normalised embeddings (n, d).

    Agglomerative clustering needs n^2 memory, so beyond ``MAX_CLUSTERED`` windows (about 25
    minutes of speech) an evenly spaced subsample is clustered and every window then joins
    its nearest centroid: memory stays bounded whatever the length.
    """
    if len(emb) > MAX_CLUSTERED:
        pick = np.linspace(0, len(emb) - 1, MAX_CLUSTERED).round().astype(np.int64)
        sub = _cluster(emb[pick], num_speakers, threshold, merge, min_windows)
        ids = np.unique(sub)
        cents = np.stack([emb[pick][sub == k].mean(0) for k in ids])
        cents /= np.linalg.norm(cents, axis=1, keepdims=True) + 1e-8
        return ids[np.argmax(emb @ cents.T, axis=1)]
    return _cluster(emb, num_speakers, threshold, merge, min_windows)


def _cluster(emb: np.ndarray, num_speakers: int | None, threshold: float, merge: float,
             min_windows: int) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    n = len(emb)
    if n == 0:
        return np.zeros(0, np.int64)
    if n == 1 or num_speakers == 1:
        return np.zeros(n, np.int64)
    if num_speakers is not None:
        k = min(num_speakers, n)
        labels = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(emb)
        return _refine(emb, labels)
    labels = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, metric="cosine",
                                     linkage="average").fit_predict(emb)
    ids, counts = np.unique(labels, return_counts=True)
    big = ids[counts >= max(min_windows, MIN_SHARE * n)]
    if len(big) == 0:
        return np.zeros(n, np.int64)
    if len(big) < len(ids):
        cents = np.stack([emb[labels == k].mean(0) for k in big])
        small = ~np.isin(labels, big)
        labels[small] = big[np.argmax(emb[small] @ cents.T, axis=1)]
    return _refine(emb, _merge_close(emb, _refine(emb, labels), merge))


class SpeakerTimeline:
    """Which speaker talks at time t, from labelled windows (nearest window centre wins)."""

    def __init__(self, windows: np.ndarray, labels: np.ndarray) -> None:
        order = np.argsort(windows[:, 0], kind="stable") if len(windows) else np.zeros(0, np.int64)
        self.windows = windows[order]
        self.labels = labels[order]
        self.centers = self.windows.mean(axis=1) if len(windows) else np.zeros(0)

    def votes(self, start: float, end: float) -> dict[int, float]:
        """Seconds of [start, end] each speaker covers (windows split at their midpoints)."""
        if len(self.centers) == 0:
            return {}
        # Each window owns the span between the midpoints to its neighbours' centres.
        bounds = np.concatenate([[-np.inf], (self.centers[1:] + self.centers[:-1]) / 2, [np.inf]])
        lo = np.searchsorted(bounds, start, side="right") - 1
        hi = np.searchsorted(bounds, end, side="left")
        out: dict[int, float] = {}
        for i in range(max(0, lo), min(len(self.centers), hi)):
            overlap = min(end, bounds[i + 1]) - max(start, bounds[i])
            if overlap > 0:
                out[int(self.labels[i])] = out.get(int(self.labels[i]), 0.0) + overlap
        return out

    def speaker_at(self, start: float, end: float) -> int | None:
        votes = self.votes(start, max(end, start + 1e-3))
        return max(votes, key=votes.get) if votes else None

    def change_points(self, start: float, end: float) -> list[tuple[float, int]]:
        """(time, speaker) at each label change inside [start, end], the first at ``start``."""
        if len(self.centers) == 0:
            return []
        bounds = np.concatenate([[-np.inf], (self.centers[1:] + self.centers[:-1]) / 2, [np.inf]])
        out: list[tuple[float, int]] = []
        for i in range(len(self.centers)):
            lo, hi = max(start, bounds[i]), min(end, bounds[i + 1])
            if hi <= lo:
                continue
            if not out or out[-1][1] != int(self.labels[i]):
                out.append((float(lo), int(self.labels[i])))
        return out
