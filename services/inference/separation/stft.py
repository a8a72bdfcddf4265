"""Numpy STFT helpers shared by the separation models and the pipeline.

Hann analysis windows at 75 % overlap, centred frames, and an inverse that divides by the summed
squared window, so ``istft(stft(x)) == x`` to float precision (a mask of ones is transparent).
"""

from __future__ import annotations

import numpy as np


def stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``(..., N)`` real -> ``(..., frames, n_fft // 2 + 1)`` complex64."""
    pad = n_fft // 2
    xp = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad + hop)], mode="constant")
    frames = 1 + (xp.shape[-1] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    return np.fft.rfft(xp[..., idx] * window, axis=-1).astype(np.complex64)


def istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """Inverse of ``stft``: ``(..., frames, bins)`` -> ``(..., length)`` float32."""
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    frames = spec.shape[-2]
    chunks = np.fft.irfft(spec, n=n_fft, axis=-1).astype(np.float32) * window
    total = n_fft + hop * (frames - 1)
    out = np.zeros(spec.shape[:-2] + (total,), np.float32)
    norm = np.zeros(total, np.float32)
    for i in range(frames):
        out[..., i * hop: i * hop + n_fft] += chunks[..., i, :]
        norm[i * hop: i * hop + n_fft] += window ** 2
    out /= np.maximum(norm, 1e-8)
    pad = n_fft // 2
    return out[..., pad: pad + length]


def transfer_mask(mask: np.ndarray, src_rate: int, src_hop: int, src_fft: int,
                  dst_frames: int, dst_rate: int, dst_hop: int, dst_fft: int,
                  high_band: tuple[float, float] = (4000.0, 8000.0)) -> np.ndarray:
    """Map a ``(frames, bins)`` mask from one STFT grid to another by time and frequency.

    Above the source Nyquist the mask is the mean of the source mask over ``high_band`` in
    each frame (the network works at 16 kHz; cymbals and hiss above 8 kHz follow their band).
    """
    src_t = np.arange(mask.shape[0]) * src_hop / src_rate
    dst_t = np.arange(dst_frames) * dst_hop / dst_rate
    ti = np.clip(np.searchsorted(src_t, dst_t - 0.5 * src_hop / src_rate), 0, mask.shape[0] - 1)
    m = mask[ti]                                                          # (dst_frames, src_bins)
    src_f = np.arange(mask.shape[1]) * src_rate / src_fft
    dst_f = np.arange(dst_fft // 2 + 1) * dst_rate / dst_fft
    fi = np.clip(np.round(dst_f * src_fft / src_rate).astype(int), 0, mask.shape[1] - 1)
    out = m[:, fi]
    above = dst_f > src_f[-1]
    if above.any():
        band = (src_f >= high_band[0]) & (src_f <= high_band[1])
        out[:, above] = m[:, band].mean(axis=1, keepdims=True)
    return out.astype(np.float32)
