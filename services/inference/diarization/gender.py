"""Speaker gender from pitch statistics.

F0 per 40 ms frame (10 ms hop) by normalised autocorrelation, searched over 60..400 Hz; a frame
is voiced when its autocorrelation peak is >= 0.6 of its energy and it is within 30 dB of the
loudest frame. The speaker's median voiced F0 gives P(female) = sigmoid((f0 - 165 Hz) / 12 Hz)
(adult male voices centre near 120 Hz, female near 210 Hz, the classes overlap at 150..180 Hz);
``female`` or ``male`` when that probability, or its complement, is >= 0.75, else ``unknown``.
Fewer than 1 s of voiced frames is ``unknown`` too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATE = 16000
FRAME, HOP = 640, 160
FMIN, FMAX = 60.0, 400.0
MIDPOINT, SCALE, DECIDE = 165.0, 12.0, 0.75


def pitch_track(audio: np.ndarray) -> np.ndarray:
    """F0 in Hz of the voiced frames of ``audio`` (16 kHz mono); unvoiced frames are left out."""
    n = 1 + (len(audio) - FRAME) // HOP
    if n <= 0:
        return np.zeros(0, np.float32)
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
    frames = audio[idx].astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    frames *= np.hanning(FRAME)
    spec = np.fft.rfft(frames, 2 * FRAME)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :FRAME]
    energy = ac[:, 0]
    lo, hi = int(RATE / FMAX), int(RATE / FMIN)
    # Normalise by the window's own autocorrelation so long lags are not penalised.
    win_ac = np.correlate(np.hanning(FRAME), np.hanning(FRAME), "full")[FRAME - 1:]
    norm = ac[:, lo:hi] / (energy[:, None] + 1e-12) / (win_ac[lo:hi] / win_ac[0])[None, :]
    lag = np.argmax(norm, axis=1)
    peak = norm[np.arange(n), lag]
    # Take the first local maximum that is nearly as high as the best one (avoids octave errors),
    # refined by parabolic interpolation.
    f0 = np.zeros(n)
    for i in np.flatnonzero(peak > 0):
        row = norm[i]
        local = np.flatnonzero((row[1:-1] >= row[:-2]) & (row[1:-1] >= row[2:]) & (row[1:-1] >= 0.85 * peak[i])) + 1
        k = int(local[0]) if len(local) else int(lag[i])
        if 0 < k < len(row) - 1:
            a, b, c = row[k - 1], row[k], row[k + 1]
            denom = a - 2 * b + c
            shift = 0.5 * (a - c) / denom if denom < 0 else 0.0
        else:
            shift = 0.0
        f0[i] = RATE / (k + lo + shift)
    loud = 10 * np.log10(energy + 1e-12) > 10 * np.log10(energy.max() + 1e-12) - 30
    voiced = (peak >= 0.6) & loud
    return f0[voiced].astype(np.float32)


@dataclass
class Gender:
    gender: str            # "male" | "female" | "unknown"
    confidence: float      # probability of the returned class (for unknown: of the likelier one)
    median_f0: float | None
    voiced_s: float


def classify(f0: np.ndarray) -> Gender:
    voiced_s = len(f0) * HOP / RATE
    if voiced_s < 1.0:
        return Gender("unknown", 0.0, float(np.median(f0)) if len(f0) else None, voiced_s)
    median = float(np.median(f0))
    p_female = 1.0 / (1.0 + np.exp(-(median - MIDPOINT) / SCALE))
    if p_female >= DECIDE:
        return Gender("female", round(float(p_female), 3), median, voiced_s)
    if 1 - p_female >= DECIDE:
        return Gender("male", round(float(1 - p_female), 3), median, voiced_s)
    return Gender("unknown", round(float(max(p_female, 1 - p_female)), 3), median, voiced_s)
