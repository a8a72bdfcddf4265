"""Small test signals, generated, never committed."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf


def tone_wav(seconds: float = 1.0, rate: int = 16000, channels: int = 1, freq: float = 440.0,
             fmt: str = "WAV") -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    buf = io.BytesIO()
    sf.write(buf, data, rate, format=fmt)
    return buf.getvalue()
