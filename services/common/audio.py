"""Audio I/O shared by the gateway (probe) and the workers (decode, resample, write).

Decoding is PyAV (any container/codec FFmpeg knows), resampling is soxr, writing is
libsndfile through soundfile (wav, flac, ogg/vorbis, mp3). Arrays are float32 shaped
``(channels, frames)`` everywhere in the project.

``iter_blocks`` streams a file in fixed-size blocks so long files run in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Self

import av
import numpy as np
import soundfile as sf
import soxr

from services.common.errors import CodedError

OUTPUT_FORMATS = ("wav", "flac", "mp3", "ogg")
# Bit depths each output format can hold. Lossy formats have no sample depth: they decode
# to float whatever is asked, so any depth is accepted and recorded only in the manifest.
FORMAT_BIT_DEPTHS: dict[str, tuple[int, ...]] = {
    "wav": (8, 16, 24, 32),
    "flac": (8, 16, 24),
    "mp3": (8, 16, 24, 32),
    "ogg": (8, 16, 24, 32),
}
_WAV_SUBTYPES = {8: "PCM_U8", 16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}
_FLAC_SUBTYPES = {8: "PCM_S8", 16: "PCM_16", 24: "PCM_24"}
CONTENT_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg", "ogg": "audio/ogg"}


class InvalidAudio(CodedError, ValueError):
    """The file is not decodable audio, holds no audio at all, or holds NaN/infinite samples."""

    code = "invalid_audio"


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    channels: int
    codec: str
    container: str


def _source(path):
    """PyAV opens paths and binary file objects alike."""
    return path if hasattr(path, "read") else str(path)


def probe(path: str | Path | BinaryIO) -> AudioInfo:
    """Read duration, rate, channels and codec; decode the stream to be sure it is audio.

    Container headers lie (or are missing for raw streams), so the duration is counted from
    decoded frames: constant memory, one pass.
    """
    try:
        with av.open(_source(path), mode="r") as container:
            if not container.streams.audio:
                raise InvalidAudio("the file has no audio stream")
            stream = container.streams.audio[0]
            frames = 0
            for frame in container.decode(stream):
                frames += frame.samples
            rate = stream.codec_context.sample_rate or stream.rate
            channels = stream.codec_context.channels
            codec = stream.codec_context.name
            fmt = container.format.name
    except InvalidAudio:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidAudio(f"the file could not be decoded as audio: {exc}") from exc
    if not rate or frames == 0:
        raise InvalidAudio("the file holds no audio samples")
    return AudioInfo(frames / rate, int(rate), int(channels), codec, fmt)


def iter_blocks(path: str | Path, block_frames: int, sample_rate: int | None = None) -> Iterator[np.ndarray]:
    """Yield float32 ``(channels, <=block_frames)`` blocks, resampled to ``sample_rate`` if given.

    Only the last block may be shorter. Memory stays at a few blocks whatever the length.
    A float file holding NaN or infinite samples raises ``InvalidAudio`` at the first such
    block: no step downstream can do anything sensible with them.
    """
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise InvalidAudio(f"the file could not be decoded as audio: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise InvalidAudio("the file has no audio stream")
        stream = container.streams.audio[0]
        in_rate = stream.codec_context.sample_rate
        channels = stream.codec_context.channels
        layout = stream.codec_context.layout.name
        # Convert every frame to planar float at the native rate and layout.
        converter = av.AudioResampler(format="fltp", layout=layout, rate=in_rate)
        resampler = (
            soxr.ResampleStream(in_rate, sample_rate, channels, dtype="float32", quality="HQ")
            if sample_rate and sample_rate != in_rate
            else None
        )
        pending: list[np.ndarray] = []
        pending_frames = 0

        def feed(x: np.ndarray, last: bool = False) -> Iterator[np.ndarray]:
            nonlocal pending, pending_frames
            if resampler is not None:
                x = resampler.resample_chunk(np.ascontiguousarray(x.T), last=last).T
            if x.shape[1]:
                pending.append(x)
                pending_frames += x.shape[1]
            while pending_frames >= block_frames or (last and pending_frames):
                joined = np.concatenate(pending, axis=1)
                out, rest = joined[:, :block_frames], joined[:, block_frames:]
                pending, pending_frames = ([rest] if rest.shape[1] else []), rest.shape[1]
                if not np.isfinite(out).all():
                    raise InvalidAudio("the audio holds NaN or infinite samples")
                yield np.ascontiguousarray(out, dtype=np.float32)

        try:
            for frame in container.decode(stream):
                for converted in converter.resample(frame):
                    yield from feed(converted.to_ndarray().astype(np.float32, copy=False))
            for converted in converter.resample(None):
                yield from feed(converted.to_ndarray().astype(np.float32, copy=False))
        except av.error.FFmpegError as exc:
            raise InvalidAudio(f"the audio stream is corrupt: {exc}") from exc
        yield from feed(np.zeros((channels, 0), np.float32), last=True)


def read_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Decode a whole file to float32 ``(channels, frames)``; for short inputs and tests."""
    rate = sample_rate or probe_rate(path)
    blocks = list(iter_blocks(path, 1 << 20, sample_rate))
    if not blocks:
        raise InvalidAudio("the file holds no audio samples")
    return np.concatenate(blocks, axis=1), rate


def probe_rate(path: str | Path) -> int:
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InvalidAudio("the file has no audio stream")
            return int(container.streams.audio[0].codec_context.sample_rate)
    except av.error.FFmpegError as exc:
        raise InvalidAudio(f"the file could not be decoded as audio: {exc}") from exc


def resample(audio: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample ``(channels, frames)`` float32 with soxr (HQ)."""
    if in_rate == out_rate:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio.T, in_rate, out_rate, quality="HQ").T.astype(np.float32)


class AudioWriter:
    """Write ``(channels, frames)`` blocks to wav/flac/ogg/mp3 at a given depth, streaming."""

    def __init__(self, path: str | Path, sample_rate: int, channels: int, fmt: str = "wav",
                 bit_depth: int = 16) -> None:
        if fmt not in FORMAT_BIT_DEPTHS or bit_depth not in FORMAT_BIT_DEPTHS[fmt]:
            raise ValueError(f"{fmt} cannot hold {bit_depth}-bit samples")
        if fmt == "wav":
            kw = {"format": "WAV", "subtype": _WAV_SUBTYPES[bit_depth]}
        elif fmt == "flac":
            kw = {"format": "FLAC", "subtype": _FLAC_SUBTYPES[bit_depth]}
        elif fmt == "ogg":
            kw = {"format": "OGG", "subtype": "VORBIS"}
        else:
            kw = {"format": "MP3", "subtype": "MPEG_LAYER_III"}
        self._file = sf.SoundFile(str(path), "w", samplerate=sample_rate, channels=channels, **kw)
        self._float = bit_depth == 32 and fmt == "wav"

    def write(self, block: np.ndarray) -> None:
        data = block.T
        if not self._float:  # integer and lossy formats clip; float WAV keeps everything
            data = np.clip(data, -1.0, 1.0)
        self._file.write(np.ascontiguousarray(data, dtype=np.float32))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, fmt: str = "wav",
                bit_depth: int = 16) -> None:
    with AudioWriter(path, sample_rate, audio.shape[0], fmt, bit_depth) as writer:
        writer.write(audio)
