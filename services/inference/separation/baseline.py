"""DSP baseline for splitting the non-speech residual into music and effects.

Cues, on a 16 kHz STFT (512 / 128, the network's grid):

1. harmonic vs percussive: median filtering of the magnitude along time (harmonic, ~0.3 s) and
   along frequency (percussive, ~0.5 kHz), Fitzgerald 2010; the soft harmonic share
   ``H^2 / (H^2 + P^2)``.
2. tonal vs noise-like: spectral peakiness, the ratio of each bin to the median of its
   frequency neighbourhood; music is made of partials, effects mostly of noise.
3. stationary floor: minimum statistics of each bin over ~2 s (Martin 2001) is a background (room tone,
   rain, traffic) and is given to effects.

music mask = harmonic share x tonal weight x (1 - stationary share); effect = 1 - music, so the
two stems sum to the residual. It is transparent and cheap, and measured against the network
in the model card: it does little for music and hurts on ambient effects.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter, minimum_filter1d, uniform_filter1d


def music_mask(magnitude: np.ndarray) -> np.ndarray:
    """``(frames, bins)`` magnitude at 16 kHz / 512 / 128 -> ``(frames, bins)`` music mask."""
    mag = magnitude.astype(np.float32) + 1e-8
    harm = median_filter(mag, size=(37, 1), mode="nearest")             # ~0.3 s along time
    perc = median_filter(mag, size=(1, 17), mode="nearest")             # ~0.5 kHz along frequency
    harmonic = harm ** 2 / (harm ** 2 + perc ** 2)
    local = median_filter(mag, size=(1, 9), mode="nearest")
    peak = mag / local
    tonal = np.clip((peak - 1.0) / 2.0, 0.0, 1.0) ** 0.5
    tonal = np.maximum(tonal, 0.3)                                      # partials smear across bins
    # minimum statistics: the running minimum (~2 s) of the 0.2 s-smoothed power, bias-corrected
    smooth = uniform_filter1d(mag ** 2, 25, axis=0, mode="nearest")
    floor = np.sqrt(1.5 * minimum_filter1d(smooth, 251, axis=0, mode="nearest"))
    stationary = np.clip(floor / mag, 0.0, 1.0) ** 2
    return np.clip(harmonic * tonal * (1.0 - stationary), 0.0, 1.0).astype(np.float32)
