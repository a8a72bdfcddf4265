"""Speech regions from frame-level VAD probabilities, the same rules for every detector.

1. A frame is speech when its probability is >= ``threshold`` (0 makes every frame speech).
2. A silence shorter than ``min_silence`` seconds between two speech runs is filled (the runs merge).
3. A speech run shorter than ``min_speech`` seconds after that is dropped.

Times are frame edges: ``start = i * hop``, ``end = j * hop``; nothing is padded here (the
pipeline pads the audio it hands Whisper, not the regions it reports).
"""

from __future__ import annotations

import bisect
import itertools
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


def speech_clips(regions: list[tuple[float, float]], pad: float = 0.4, max_gap: float = 1.5,
                 duration: float | None = None) -> list[tuple[float, float]]:
    """The audio Whisper decodes: speech regions padded by ``pad`` seconds (VAD clips word
    edges, in noise most of all), merged where less than ``max_gap`` separates them. Clips have
    no length limit: Whisper seeks through a long one window by window."""
    hi = duration if duration is not None else float("inf")
    clips: list[list[float]] = []
    for start, end in regions:
        s, e = max(0.0, start - pad), min(hi, end + pad)
        if clips and s - clips[-1][1] < max_gap:
            clips[-1][1] = max(clips[-1][1], e)
        else:
            clips.append([s, e])
    return [(s, e) for s, e in clips]


def spans(clips: list[tuple[float, float]], max_span: float) -> list[list[tuple[float, float]]]:
    """Consecutive clips grouped so that each group covers at most ``max_span`` seconds of the
    file (a clip longer than that is cut): the audio handed to Whisper at once stays bounded."""
    out: list[list[tuple[float, float]]] = []
    for s, e in clips:
        while e - s > max_span:
            out.append([(s, s + max_span)])
            s += max_span
        if out and e - out[-1][0][0] <= max_span:
            out[-1].append((s, e))
        else:
            out.append([(s, e)])
    return out


def decode_spans(clips: list[tuple[float, float]], duration: float, max_span: float,
                 lead: float = 30.0) -> list[tuple[float, float]]:
    """What Whisper decodes: the file itself, as Whisper alone decodes it, not only its speech
    clips, cut between clips into spans of at most ``max_span`` seconds of clips (bounded memory).
    Each span starts where the last ended, or ``lead`` seconds before its first clip after a
    longer stretch without speech; the last ends ``lead`` seconds after the last clip at most.
    A file under ``max_span`` with speech in its first ``lead`` seconds is one span, 0..duration.
    Why: a clip that starts 0.1 s off where Whisper alone starts its window decodes differently
    (2-10 WER points either way per recording); the clips still say where speech is (guard)."""
    groups = spans(clips, max_span)
    out: list[tuple[float, float]] = []
    end = 0.0
    for g, group in enumerate(groups):
        start = max(end, group[0][0] - lead)
        end = min(duration, group[-1][1] + lead) if g == len(groups) - 1 else group[-1][1]
        out.append((start, end))
    return out


def unheard(regions: list[tuple[float, float]], words: list[tuple[float, float]], min_gap: float = 1.0,
            reach: float = 0.3, longest_word: float = 1.0,
            rejected: list[tuple[float, float]] = ()) -> list[tuple[float, float]]:
    """Speech that no word covers, in runs of at least ``min_gap`` seconds: what Whisper skipped.

    A word covers ``reach`` seconds either side of it (pauses between words are speech to a VAD),
    and at most ``longest_word`` seconds of its own span: a word aligned over several seconds is
    a sign that the decoder jumped, not that someone drew a word out that long. ``rejected``
    spans (segments the hallucination guard dropped) count as heard: Whisper decoded them.
    The covered spans are merged first, then cut out of each region."""
    heard: list[list[float]] = []
    for s, e in sorted([(s - reach, min(e, s + longest_word) + reach) for s, e in words] + list(rejected)):
        if heard and s <= heard[-1][1]:
            heard[-1][1] = max(heard[-1][1], e)
        else:
            heard.append([s, e])
    ends = [e for _, e in heard]
    out: list[tuple[float, float]] = []
    for start, end in regions:
        t = start
        for s, e in itertools.islice(heard, bisect.bisect_right(ends, start), None):
            if s >= end:
                break
            if s - t >= min_gap:
                out.append((round(t, 3), round(s, 3)))
            t = e
        if end - t >= min_gap:
            out.append((round(t, 3), round(end, 3)))
    return out
