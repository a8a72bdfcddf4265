"""Generated audio for the separation tests: non-verbal vocal sounds (hums, vowels, laughs).

A glottal pulse train (f0 with a slow glide and vibrato) through formant resonators: voiced,
speech-like to a VAD, but without words.
"""

from __future__ import annotations

import numpy as np
import scipy.signal as sps

FORMANTS = {  # (frequency Hz, bandwidth Hz)
    "mm": [(250, 60), (1000, 200), (2200, 300)],
    "aa": [(730, 90), (1090, 110), (2440, 170)],
    "oo": [(300, 60), (870, 100), (2240, 150)],
}


def vocal(kind: str, seconds: float, rate: int = 48000, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A hum ("mm") or a sung/held vowel ("aa", "oo"), mono float32, peak 0.5."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    freq = f0 * (1 + 0.15 * np.sin(2 * np.pi * 0.4 * t) + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = np.cumsum(freq) / rate
    pulses = np.diff(np.floor(phase), prepend=0.0)                 # one impulse per period
    source = sps.lfilter([1.0], [1.0, -0.95], pulses)               # glottal tilt
    source += 0.02 * rng.standard_normal(n)                         # breath
    y = np.zeros(n)
    for f, bw in FORMANTS[kind]:
        r = np.exp(-np.pi * bw / rate)
        a = [1.0, -2 * r * np.cos(2 * np.pi * f / rate), r * r]
        y += sps.lfilter([1 - r], a, source)
    env = np.minimum(1.0, np.minimum(t, seconds - t) / 0.08)
    y *= env
    return (0.5 * y / (np.max(np.abs(y)) + 1e-9)).astype(np.float32)


def laugh(seconds: float, rate: int = 48000, seed: int = 1) -> np.ndarray:
    """"ha-ha-ha": breathy voiced bursts at ~5 per second."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    bursts = np.clip(np.sin(2 * np.pi * 4.5 * t), 0, None) ** 2
    voiced = vocal("aa", seconds, rate, f0=220.0, seed=seed)
    breath = sps.sosfilt(sps.butter(2, [800 / (rate / 2), 4000 / (rate / 2)], "bandpass", output="sos"),
                         rng.standard_normal(n))
    y = (voiced / 0.5 + 0.3 * breath) * bursts
    return (0.5 * y / (np.max(np.abs(y)) + 1e-9)).astype(np.float32)
