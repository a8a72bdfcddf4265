"""Waveform peaks for the results page, computed by the gateway so the browser never decodes audio.

One streaming pass keeps the min and max of every 10 ms (memory: 2 floats per 10 ms, about
11 MB for 4 hours), then folds them into ``points`` buckets: what a canvas draws as a
waveform. The channels are mixed to mono first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.common.audio import iter_blocks, probe_rate

HOP_S = 0.01


def peaks(path: str | Path, points: int = 1000) -> dict:
    rate = probe_rate(path)
    hop = max(1, int(rate * HOP_S))
    lows, highs, frames = [], [], 0
    carry = np.zeros(0, np.float32)
    for block in iter_blocks(path, hop * 512):
        mono = np.concatenate([carry, block.mean(axis=0)])        # (frames,)
        whole = (mono.size // hop) * hop
        if whole:
            rows = mono[:whole].reshape(-1, hop)                     # (hops, hop)
            lows.append(rows.min(axis=1))
            highs.append(rows.max(axis=1))
        carry = mono[whole:]
        frames += block.shape[1]
    if carry.size:
        lows.append(carry.min(keepdims=True))
        highs.append(carry.max(keepdims=True))
    if not lows:
        return {"duration": 0.0, "min": [], "max": []}
    lo, hi = np.concatenate(lows), np.concatenate(highs)
    edges = np.linspace(0, lo.size, min(points, lo.size) + 1).astype(int)       # (points + 1,)
    return {"duration": round(frames / rate, 3),
            "min": np.round(np.minimum.reduceat(lo, edges[:-1]), 4).tolist(),
            "max": np.round(np.maximum.reduceat(hi, edges[:-1]), 4).tolist()}
