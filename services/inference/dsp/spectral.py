"""Spectral-gate denoiser: the fallback when the speech_enhancer model cannot serve.

A classic, model-free method: short-time Fourier transform (~21 ms windows, 75% overlap),
a per-bin noise power estimated as the 20th percentile of that bin over the chunk (speech
leaves most bins quiet most of the time), a Wiener-style gain ``1 - 1.5 * noise / power``
floored at the attenuation limit and smoothed over neighbouring frames and bins, then the
inverse transform. Works on any steady noise; weaker than DeepFilterNet3 on non-stationary
noise and leaves some "musical" residue. Stateless per call like the model, so the same
chunking and crossfades apply.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import scipy.signal


def spectral_gate(audio: np.ndarray, rate: int, atten_lim_db: float = 100.0) -> np.ndarray:
    """Denoise mono ``(frames,)`` float32; same length, time-aligned."""
    n = audio.shape[0]
    if n == 0 or atten_lim_db <= 0:
        return audio.astype(np.float32, copy=True)
    nper = 1 << round(float(np.log2(rate * 0.021)))
    nper = max(64, min(nper, 8192))
    if n < nper:
        return audio.astype(np.float32, copy=True)
    _, _, spec = scipy.signal.stft(audio, rate, nperseg=nper, noverlap=nper * 3 // 4, boundary="even")
    power = np.abs(spec) ** 2
    noise = np.percentile(power, 20, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = 1.0 - 1.5 * noise / np.maximum(power, 1e-20)
    floor = 10 ** (-min(atten_lim_db, 60.0) / 20)
    gain = np.clip(gain, floor, 1.0)
    gain = scipy.ndimage.uniform_filter(gain, size=(3, 5), mode="nearest")
    _, out = scipy.signal.istft(spec * gain, rate, nperseg=nper, noverlap=nper * 3 // 4, boundary=True)
    out = out[:n]
    if out.shape[0] < n:
        out = np.pad(out, (0, n - out.shape[0]))
    return out.astype(np.float32)
