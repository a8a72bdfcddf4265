"""Dynamics: a broadcast-style compressor and a look-ahead true-peak limiter.

Compressor: pedalboard's (JUCE) compressor, fed at a fixed programme level so its threshold
means the same thing on quiet and loud recordings: the signal is brought to
``COMPRESSOR.reference_lufs`` (from its measured loudness), compressed (3:1 above -28 dBFS,
5 ms attack, 150 ms release: the gentle levelling of a broadcast chain), and brought back.
Make-up gain is applied by the caller from measurement (the loudness lost is restored
exactly, or loudness normalisation sets the level).

Limiter: gain computed from the true-peak envelope (``oversampled_peak``), so intersample
peaks are held too. For every sample the needed gain ``r = min(1, ceiling / peak)`` is
min-filtered over a window reaching ``lookahead`` ahead and ``hold`` behind, smoothed with a
one-pole release (only ever downwards of the min-filtered gain) and averaged over the
look-ahead; each averaged term is at most the gain the sample needs, so the output never
exceeds the ceiling, and the gain ramps down over the look-ahead instead of jumping (no
clicks). ``TruePeakLimiter`` streams it with enough context on both sides of each block that
the result does not depend on where the blocks fall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pedalboard
import scipy.ndimage
import scipy.signal

from services.inference.dsp.loudness import _TAPS_PER_PHASE, oversampled_peak, oversampling_factor


@dataclass(frozen=True)
class CompressorSettings:
    reference_lufs: float = -20.0
    threshold_db: float = -28.0
    ratio: float = 3.0
    attack_ms: float = 5.0
    release_ms: float = 150.0


COMPRESSOR = CompressorSettings()


def build_compressor(input_lufs: float, settings: CompressorSettings = COMPRESSOR) -> pedalboard.Pedalboard:
    """Compressor chain for programme measured at ``input_lufs`` (stream with reset=False)."""
    pre = 0.0 if not math.isfinite(input_lufs) else float(np.clip(settings.reference_lufs - input_lufs, -40, 40))
    return pedalboard.Pedalboard([
        pedalboard.Gain(pre),
        pedalboard.Compressor(settings.threshold_db, settings.ratio, settings.attack_ms, settings.release_ms),
        pedalboard.Gain(-pre),
    ])


# Real (band-limited) programme does not overshoot its sample peaks by 6 dB between samples,
# so blocks whose samples all stay 6 dB under the ceiling skip the oversampling.
INTERSAMPLE_GUARD = 2.0


@dataclass(frozen=True)
class LimiterSettings:
    ceiling_dbtp: float = -1.0
    margin_db: float = 0.1        # aim this far under the ceiling (interpolation error of the gain)
    lookahead_ms: float = 5.0
    hold_ms: float = 10.0
    release_ms: float = 80.0


def limiter_gain(x: np.ndarray, rate: int, s: LimiterSettings = LimiterSettings()) -> np.ndarray:
    """Gain ``(frames,)`` that keeps ``x * gain`` under the true-peak ceiling (stateless)."""
    n = x.shape[1]
    if n == 0:
        return np.ones(0, np.float32)
    ceiling = 10 ** ((s.ceiling_dbtp - s.margin_db) / 20)
    if float(np.abs(x).max()) * INTERSAMPLE_GUARD < ceiling:
        return np.ones(n, np.float32)     # no sample within 6 dB of the ceiling: nothing to do
    peak = oversampled_peak(x, oversampling_factor(rate))
    peak = scipy.ndimage.maximum_filter1d(peak, 3, mode="nearest")
    with np.errstate(divide="ignore"):
        need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    if need.min() >= 1.0:
        return np.ones(n, np.float32)
    look = max(2, 2 * round(s.lookahead_ms * rate / 2000))       # even
    hold = max(2, 2 * round(s.hold_ms * rate / 2000))            # even
    size = look + hold + 1                                       # window [i - hold, i + look]
    q = scipy.ndimage.minimum_filter1d(need, size, mode="nearest", origin=hold - size // 2)
    a = math.exp(-1.0 / (s.release_ms * rate / 1000))
    lp, _ = scipy.signal.lfilter([1 - a], [1, -a], q, zi=[a * q[0]])
    q = np.minimum(q, lp)
    g = scipy.ndimage.uniform_filter1d(q, look + 1, mode="nearest", origin=look // 2)
    return np.minimum(g, 1.0).astype(np.float32)


class TruePeakLimiter:
    """Streaming wrapper of ``limiter_gain``: output lags input by ``latency`` samples."""

    def __init__(self, rate: int, channels: int, settings: LimiterSettings = LimiterSettings()) -> None:
        self.rate = rate
        self.settings = settings
        ms = settings.lookahead_ms + settings.hold_ms + 8 * settings.release_ms
        self._past = round(ms * rate / 1000) + _TAPS_PER_PHASE + 4
        self.latency = round(settings.lookahead_ms * rate / 1000) + _TAPS_PER_PHASE + 4
        self._buf = np.zeros((channels, 0), np.float32)
        self._done = 0            # samples at the head of _buf already output (context)
        self.reduction_db = 0.0   # deepest gain reduction applied so far

    def _emit(self, end: int) -> np.ndarray:
        g = limiter_gain(self._buf, self.rate, self.settings)
        seg = g[self._done:end]
        if seg.size:
            self.reduction_db = min(self.reduction_db, 20 * math.log10(max(float(seg.min()), 1e-9)))
        return self._buf[:, self._done:end] * seg

    def process(self, block: np.ndarray) -> np.ndarray:
        self._buf = np.concatenate([self._buf, block.astype(np.float32, copy=False)], axis=1)
        end = self._buf.shape[1] - self.latency
        if end <= self._done:
            return np.zeros((self._buf.shape[0], 0), np.float32)
        out = self._emit(end)
        keep = max(0, end - self._past)
        self._buf, self._done = self._buf[:, keep:], end - keep
        return out

    def flush(self) -> np.ndarray:
        out = self._emit(self._buf.shape[1])
        self._buf, self._done = self._buf[:, :0], 0
        return out
