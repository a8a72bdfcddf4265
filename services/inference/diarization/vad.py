"""Speech regions from frame-level VAD probabilities, the same rules for every detector.

1. A frame is speech when its probability is >= ``threshold`` (0 makes every frame speech).
2. A silence shorter than ``min_silence`` seconds between two speech runs is filled (the runs merge).
3. A speech run shorter than ``min_speech`` seconds after that is dropped.

Times are frame edges: ``start = i * hop``, ``end = j * hop``; nothing is padded here (the
pipeline pads the audio it hands Whisper, not the regions it reports).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VadOptions:
    threshold: float = 0.5
    min_speech: float = 0.1
    min_silence: float = 0.1


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [i, j) index runs where mask is True."""
    if mask.size == 0:
        return []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def speech_regions(probs: np.ndarray, hop_s: float, opts: VadOptions) -> list[tuple[float, float]]:
    runs = _runs(np.asarray(probs) >= opts.threshold)
    merged: list[list[int]] = []
    for start, end in runs:
        if merged and (start - merged[-1][1]) * hop_s < opts.min_silence - 1e-9:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(round(s * hop_s, 4), round(e * hop_s, 4)) for s, e in merged
            if (e - s) * hop_s >= opts.min_speech - 1e-9]


def pack_clips(regions: list[tuple[float, float]], max_len: float = 30.0, max_gap: float = 2.0,
               pad: float = 0.2, duration: float | None = None) -> list[tuple[float, float]]:
    """Group neighbouring regions into clips Whisper decodes in one 30 s window.

    Regions closer than ``max_gap`` share a clip while it stays under ``max_len``; a region
    longer than ``max_len`` is cut into equal pieces. Clips are padded by ``pad`` seconds.
    """
    pieces: list[tuple[float, float]] = []
    limit = max_len - 2 * pad
    for start, end in regions:
        n = int(np.ceil((end - start) / limit)) or 1
        step = (end - start) / n
        pieces += [(start + k * step, start + (k + 1) * step) for k in range(n)]
    clips: list[list[float]] = []
    for start, end in pieces:
        if clips and start - clips[-1][1] < max_gap and end - clips[-1][0] <= limit:
            clips[-1][1] = end
        else:
            clips.append([start, end])
    hi = duration if duration is not None else float("inf")
    return [(max(0.0, s - pad), min(hi, e + pad)) for s, e in clips]
