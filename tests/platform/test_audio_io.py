"""Audio I/O: probe, streaming decode with resampling, and writing every format and depth."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from services.common.audio import (
    FORMAT_BIT_DEPTHS,
    AudioWriter,
    InvalidAudio,
    iter_blocks,
    probe,
    read_audio,
    write_audio,
)


def sine(rate: int, seconds: float, channels: int = 2) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.4 * np.sin(2 * np.pi * (300 + 200 * c) * t) for c in range(channels)]).astype(np.float32)


@pytest.mark.parametrize("fmt", sorted(FORMAT_BIT_DEPTHS))
def test_each_format_and_depth_roundtrips(tmp_path, fmt):
    x = sine(44100, 1.0)
    for depth in FORMAT_BIT_DEPTHS[fmt]:
        path = tmp_path / f"o{depth}.{fmt}"
        write_audio(path, x, 44100, fmt, depth)
        info = probe(path)
        assert (info.sample_rate, info.channels) == (44100, 2)
        assert abs(info.duration_s - 1.0) < 0.06  # lossy codecs pad a little
        y, _ = read_audio(path)
        if fmt in ("wav", "flac"):
            n = min(x.shape[1], y.shape[1])
            err = np.abs(y[:, :n] - x[:, :n]).max()
            assert err < {8: 1e-2, 16: 1e-4, 24: 1e-6, 32: 1e-7}[depth], (depth, err)
            assert sf.info(str(path)).subtype == {8: {"wav": "PCM_U8", "flac": "PCM_S8"}[fmt], 16: "PCM_16",
                                                  24: "PCM_24", 32: "FLOAT"}[depth]


def test_refuses_a_depth_the_format_cannot_hold(tmp_path):
    with pytest.raises(ValueError):
        AudioWriter(tmp_path / "x.flac", 48000, 1, "flac", 32)


def test_streaming_blocks_resample_and_keep_length(tmp_path):
    path = tmp_path / "in.wav"
    write_audio(path, sine(44100, 3.0), 44100, "wav", 32)
    blocks = list(iter_blocks(path, 8000, sample_rate=16000))
    assert all(b.shape == (2, 8000) for b in blocks[:-1]) and 0 < blocks[-1].shape[1] <= 8000
    joined = np.concatenate(blocks, axis=1)
    assert abs(joined.shape[1] - 48000) <= 2
    spectrum = np.abs(np.fft.rfft(joined[0, 4000:20000]))
    assert abs(np.argmax(spectrum) - 300) <= 2  # 1 Hz bins: the 300 Hz tone survived resampling


def test_garbage_is_invalid_audio(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt " + b"\x01" * 100)
    with pytest.raises(InvalidAudio):
        probe(bad)
    with pytest.raises(InvalidAudio):
        list(iter_blocks(bad, 1000))
