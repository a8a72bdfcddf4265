"""Speaker windows over speech, clustering of their embeddings, and time -> speaker look-ups.

Windows: 1.5 s long, 0.75 s hop, inside each speech region (a region shorter than a window
gets one window of its own length, if at least ``MIN_WINDOW``).

Clustering of the L2-normalised CAM++ embeddings: spectral clustering of the graph that links
each window to its ``keep`` most similar windows. The count is the largest eigengap of
that graph's Laplacian (``num_speakers`` fixes it; ``min_speakers`` / ``max_speakers`` bound
it), k-means on the leading eigenvectors gives the labels. Only the ranking of similarities
matters, so noise that lowers a voice's similarity to itself (10 dB SNR: 0.55 instead of 0.7)
no longer splits it as a fixed merge threshold did. ``keep`` is chosen per input among
``KEEP_CHOICES`` counts from ``MIN_KEEP`` up, as NME-SC does (Park et al. 2019, "Auto-tuning
spectral clustering for speaker diarization using normalized maximum eigengap"): the one
whose largest eigengap, relative to the largest eigenvalue, is widest for the links it
needs. Both constants were calibrated on the calib split (bench/diarize_calibrate.py,
docs/diarize.md); NME-SC's full range (down to 2 links) fragments short inputs.

The eigengap undercounts (on calib 7 of its 8 count misses were too few speakers: two alike
voices share a neighbourhood), so the count it gives is a floor: among it and the
``SILHOUETTE_UP`` counts above, the labels whose clusters are tightest and furthest apart on
the embeddings themselves (mean cosine silhouette, Rousseeuw 1987) win. One speaker stays one:
the silhouette cannot score a single cluster.
"""

from __future__ import annotations

import numpy as np

WINDOW, HOP, MIN_WINDOW = 1.5, 0.75, 0.4
MIN_KEEP = 6             # each window links to its 6..10 most similar windows (calibrated) ...
KEEP_CHOICES = 5         # ... NME-SC picks the count per input among 5 (calibrated) ...
WEIGHTED = False         # ... each link weighing 1 (False) or its cosine (True) (calibrated)
KEEP_SHARE = 0.02        # ... or 2 % of them on long inputs (3D-Speaker's share; not calibrated)
SILHOUETTE_UP = 2        # the count may rise by up to 2 above the eigengap's (calibrated)
MIN_WINDOWS = 3          # at most one speaker per 3 windows (a speaker needs ~3 s of speech)
MAX_SPEAKERS = 20        # the API's ceiling
MAX_CLUSTERED = 1000     # longer inputs: cluster an even subsample, assign the rest to centroids


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


def _centroids(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.unique(labels)
    cents = np.stack([emb[labels == k].mean(0) for k in ids])
    return ids, cents / (np.linalg.norm(cents, axis=1, keepdims=True) + 1e-8)


def _pruned_laplacian(sim: np.ndarray, keep: int) -> np.ndarray:
    """Laplacian of the graph that links each window to its ``keep`` most similar others; with
    ``WEIGHTED`` each link weighs its cosine (clipped at 0), otherwise 1."""
    n = len(sim)
    pruned = sim.copy()
    np.fill_diagonal(pruned, -np.inf)
    top = np.argpartition(-pruned, keep - 1, axis=1)[:, :keep]
    rows, cols = np.repeat(np.arange(n), keep), top.ravel()
    aff = np.zeros((n, n))
    aff[rows, cols] = np.clip(sim[rows, cols], 0.0, None) if WEIGHTED else 1.0
    aff = (aff + aff.T) / 2
    return np.diag(aff.sum(1)) - aff


def nme_graph(sim: np.ndarray, kmax: int) -> tuple[int, np.ndarray, np.ndarray]:
    """The link count NME-SC prefers and its graph's eigenvalues and vectors: among
    ``KEEP_CHOICES`` counts, the smallest ratio of links to normalised maximum eigengap
    (the largest gap among the first ``kmax + 1`` eigenvalues over the largest eigenvalue)."""
    n = len(sim)
    # Fewer neighbours than the windows of one voice: short inputs link to n / MIN_WINDOWS.
    cap = max(2, min(n - 1, n // MIN_WINDOWS))
    first = min(cap, max(MIN_KEEP, round(KEEP_SHARE * n)))
    best: tuple[float, int, np.ndarray, np.ndarray] | None = None
    for keep in range(first, min(cap, first + KEEP_CHOICES - 1) + 1):
        vals, vecs = np.linalg.eigh(_pruned_laplacian(sim, keep))
        gap = float(np.diff(vals[: kmax + 1]).max()) / max(float(vals[-1]), 1e-10)
        ratio = keep / max(gap, 1e-10)
        if best is None or ratio < best[0]:
            best = (ratio, keep, vals, vecs)
    return best[1], best[2], best[3]


def _spectral(emb: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Spectral clustering of the nearest-neighbour graph; the count is the largest gap among
    the smallest eigenvalues of its Laplacian (at most one speaker per ``MIN_WINDOWS``
    windows), then clamped into [lo, hi] as pyannote does, then raised while the labels' cosine
    silhouette says so (``SILHOUETTE_UP``). The graph depends on which windows are most alike,
    not on how alike: noise that lowers every similarity does not split a voice."""
    n = len(emb)
    kmax = max(1, min(MAX_SPEAKERS, n // MIN_WINDOWS, n - 1))
    _, vals, vecs = nme_graph(emb @ emb.T, kmax)
    estimate = 1 + int(np.argmax(np.diff(vals[: kmax + 1])))
    k = min(max(estimate, lo), hi)
    if k == 1:
        return np.zeros(n, np.int64)
    # a count the bounds imposed is kept: the eigengap's own count is what may be too low
    top = min(k + SILHOUETTE_UP, hi, kmax) if k == estimate else k
    candidates = [_kmeans(vecs, c) for c in range(k, top + 1)]
    return max(candidates, key=lambda labels: _silhouette(emb, labels)) if len(candidates) > 1 else candidates[0]


def _kmeans(vecs: np.ndarray, k: int) -> np.ndarray:
    """k-means labels on the ``k`` leading eigenvectors."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(vecs[:, :k]).astype(np.int64)


def _silhouette(emb: np.ndarray, labels: np.ndarray) -> float:
    """Mean cosine silhouette of ``labels`` on the embeddings (-1 when k-means left one cluster)."""
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(emb, labels, metric="cosine")) if len(set(labels.tolist())) > 1 else -1.0


def cluster(emb: np.ndarray, num_speakers: int | None = None, min_speakers: int = 1,
            max_speakers: int = MAX_SPEAKERS) -> np.ndarray:
    """Cluster labels (n,) for L2-normalised embeddings (n, d).

    ``num_speakers`` fixes the count; otherwise it is estimated within [min_speakers,
    max_speakers]. The eigen-decomposition is O(n^3), so beyond ``MAX_CLUSTERED`` windows an
    evenly spaced subsample is clustered and every window then joins its nearest centroid.
    """
    if num_speakers is not None:
        min_speakers = max_speakers = num_speakers
    if len(emb) > MAX_CLUSTERED:
        pick = np.linspace(0, len(emb) - 1, MAX_CLUSTERED).round().astype(np.int64)
        ids, cents = _centroids(emb[pick], _cluster(emb[pick], min_speakers, max_speakers))
        return ids[np.argmax(emb @ cents.T, axis=1)]
    return _cluster(emb, min_speakers, max_speakers)


def _cluster(emb: np.ndarray, lo: int, hi: int) -> np.ndarray:
    n = len(emb)
    hi = min(hi, n)
    if n < 3 or hi <= 1:
        return np.zeros(n, np.int64)
    return _spectral(emb, min(lo, hi), hi)


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
