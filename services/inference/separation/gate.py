"""The word gate of ``speech-nonlingual``: which stretches of the dialogue stem are words.

The VAD draws the edges, Whisper says which of its regions hold words: a VAD region (widened by
``REGION_PAD_S``) is linguistic speech when the words Whisper heard in it cover more than
``MIN_WORD_S`` of it, and then it is kept whole. A laugh, a hum or a grunt forms a region of
its own that holds no word (or only an interjection, ``NONVERBAL``), and goes to ``nonlingual``.
Whisper is asked twice, with beam search (its default) and greedily: a decode loses a whole
phrase now and then (a perturbation of 4e-4 in the input made beam search drop the last two
words of a 12 s window), rarely the same one twice.

Until 2026-12-06 the gate was the words' own times (+-50 ms) intersected with the VAD. Whisper's
cross-attention times are coarse (a word's start is often 0.3 s late) and it decoded greedily, so
on recorded prompts that hold nothing but words the gate took 19-22 % of the words' energy out of
the speech stem: 1.96 dB SI-SDR below the ungated dialogue stem on the held-out set, 3.1 dB on
calib (``bench/nonlingual_heldout.py``; ``docs/separate.md``). The constants were chosen on calib
voices with hedgewars' lines without words.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from scipy.ndimage import convolve1d

from services.inference.diarization.guard import silence

# Whisper writes non-verbal sounds as interjections ("Hmm.", "Ah!", "Ha ha"): not words
NONVERBAL = re.compile(r"^(h*m+|m+h*m*|a+h+|o+h+|u+h+m*|u+m+|e+h+|e+r+m*|ha(ha)*|he(he)*|hah+|sh+|p+s+t+)$")
BEAMS = (5, 1)        # Whisper's beam search, then greedy: a region either decode hears words in
MIN_WORD_PROB = 0.1   # a word Whisper is this unsure of is more often a sound it read as a word
REGION_PAD_S = 0.1    # the VAD regions widened by this much on each side
MIN_WORD_S = 0.1      # seconds of word inside a region that make it speech
WORDS_ONLY_PAD_S = 0.2  # without a VAD: each word's own span, padded
FADE_S = 0.02


Regions = list[tuple[float, float]]


def merge(regions: Regions) -> Regions:
    out: Regions = []
    for a, b in sorted(regions):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def dilate(regions: Regions, pad: float) -> Regions:
    return merge([(max(0.0, a - pad), b + pad) for a, b in regions])


def spoken_words(segments: list[dict[str, Any]]) -> Regions:
    """``(start, end)`` of every word Whisper heard as a word: not an interjection, not under
    ``MIN_WORD_PROB``, not in a segment that Whisper's own silence rule rejects (no_speech_prob
    > 0.6 with avg_logprob < -1; a likely silence alone means nothing when the decoder is sure)."""
    out: Regions = []
    for seg in segments:
        if silence(seg):
            continue
        for w in seg.get("words", []):
            token = re.sub(r"[^\w]", "", w["word"].lower())
            if token and not NONVERBAL.match(token) and w.get("probability", 1.0) >= MIN_WORD_PROB:
                out.append((float(w["start"]), float(w["end"])))
    return out


def worded_regions(vad: Regions, *decodes: Regions) -> Regions:
    """The VAD regions (widened by ``REGION_PAD_S``) in which the words of one of the ``decodes``
    cover more than ``MIN_WORD_S``."""
    def covered(a: float, b: float, words: Regions) -> float:
        return sum(max(0.0, min(b, we) - max(a, ws)) for ws, we in words)

    return [(a, b) for a, b in dilate(vad, REGION_PAD_S) if any(covered(a, b, w) > MIN_WORD_S for w in decodes)]


def gate(regions: Regions, n: int, rate: int) -> np.ndarray:
    """A 0..1 gate of ``n`` samples: 1 inside ``regions``, with ``FADE_S`` Hann fades."""
    out = np.zeros(n, np.float32)
    for a, b in regions:
        out[max(0, int(a * rate)): min(n, int(b * rate))] = 1.0
    ramp = int(FADE_S * rate)
    kernel = np.hanning(2 * ramp + 1).astype(np.float32)
    return np.clip(convolve1d(out, kernel / kernel.sum(), mode="constant"), 0.0, 1.0)
