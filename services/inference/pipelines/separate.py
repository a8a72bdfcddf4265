"""Separation pipeline: split a file into stems that sum back to it.

Types (``separation_type``) and their stems:

- ``dialogue-me`` -> ``speech``, ``me``. Speech is extracted by DeepFilterNet3 (model
  ``speech_enhancer``, 48 kHz, full strength) on the channel mean; ``speech_mask`` turns its
  output into a time-frequency mask (half DeepFilterNet3's own output, half its ratio mask as
  the project's network bends it where that model keeps too little of the voice) applied to
  every input channel, so stereo stays stereo.
  ``me`` (music + effects) is the residual, ``input - speech``.
- ``dialogue-music-effect`` -> ``speech``, ``music``, ``effect``. Speech as above; the residual
  is split by ``music_effect_separator`` (the project's own mask network, or its DSP baseline
  when the weights are missing); ``effect = input - speech - music``.
- ``speech-nonlingual`` -> ``speech``, ``nonlingual``. ``speech`` is *linguistic* speech: the
  speech stem kept over the VAD regions in which Whisper hears words (``separation/gate.py``,
  20 ms fades); ``nonlingual = input - speech``: non-verbal vocal sounds (laughs, breaths,
  hums, shouts without words) and everything that is not speech. Without Whisper the gate is
  the VAD alone (then hums count as speech); the manifest says which gate ran.

The last stem of each type is always computed as ``input - (other stems)`` at the output rate,
so the stems sum to the input to float precision (exactly what a 32-bit float WAV holds;
integer and lossy formats round or clip each stem on their own).

Long files run in bounded memory: the input is streamed (``iter_blocks``) at 48 kHz in 20 s
windows with 1.5 s of overlap; the first 0.5 s of each overlap is a pre-roll that is thrown
away (the speech model warms up there) and the last 1 s is a raised-cosine crossfade whose two
weights sum to one. Stems are resampled to ``sample_rate`` with streaming soxr and written
block by block (``AudioWriter``). Outputs: ``<stem>.<ext>`` per stem and ``manifest.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import soxr

from services.common.audio import CONTENT_TYPES, AudioWriter, InvalidAudio, iter_blocks, probe, resample
from services.common.params import STEMS, SeparateParams, SeparationType
from services.inference.diarization.vad import VadOptions, speech_regions
from services.inference.errors import InvalidParams, ModelError, ModelNotFound
from services.inference.model_client import parse_json_output
from services.inference.pipeline import JobContext, Pipeline, ResultFile
from services.inference.separation import gate as word_gate

PROC_RATE = 48000                      # DeepFilterNet3's rate: all separation runs here
WINDOW_S, PREROLL_S, FADE_S = 20.0, 0.5, 1.0
ASR_RATE = 16000
# the word gate reads the VAD's runs as they are (no gap filled, no short run dropped): it widens
# and keeps whole regions itself (separation/gate.py)
RAW_VAD = VadOptions(threshold=0.5, min_speech=0.0, min_silence=0.0)
# Rates libsndfile's MP3 encoder (LAME) accepts.
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass
class _Stream:
    """One stem on its way to disk: resampler to the output rate, writer, running level."""

    writer: AudioWriter
    resampler: soxr.ResampleStream | None
    channels: int
    pending: list[np.ndarray] = field(default_factory=list)
    frames: int = 0
    sum_sq: float = 0.0
    peak: float = 0.0

    def push(self, block: np.ndarray, last: bool = False) -> None:
        if self.resampler is not None:
            block = self.resampler.resample_chunk(np.ascontiguousarray(block.T), last=last).T
        if block.shape[1]:
            self.pending.append(np.ascontiguousarray(block, dtype=np.float32))

    def available(self) -> int:
        return sum(b.shape[1] for b in self.pending)

    def take(self, n: int) -> np.ndarray:
        joined = np.concatenate(self.pending, axis=1) if len(self.pending) > 1 else self.pending[0]
        out, rest = joined[:, :n], joined[:, n:]
        self.pending = [rest] if rest.shape[1] else []
        return out

    def write(self, block: np.ndarray) -> None:
        self.writer.write(block)
        self.frames += block.shape[1]
        self.sum_sq += float(np.sum(block.astype(np.float64) ** 2))
        self.peak = max(self.peak, float(np.max(np.abs(block))) if block.size else 0.0)


class SeparatePipeline(Pipeline):
    job_type = "separate"
    steps = ("probe", "separate", "manifest")

    # ------------------------------------------------------------------ entry point

    def run(self, ctx: JobContext[SeparateParams]) -> list[ResultFile]:
        params = ctx.params
        fmt, depth, out_rate = params.output_format, params.bit_depth, params.sample_rate
        if fmt == "mp3" and out_rate not in MP3_RATES:
            raise InvalidParams(f"mp3 cannot be written at {out_rate} Hz "
                                f"(allowed: {', '.join(map(str, MP3_RATES))}); use wav, flac or ogg")
        sep_type = SeparationType(params.separation_type)
        stems = STEMS[sep_type]
        info = probe(ctx.input_path)
        ctx.hook("probe", completed=1, total=1)

        started = time.monotonic()
        paths = {s: ctx.workdir / f"{s}.{fmt}" for s in stems}
        channels = info.channels
        streams = {
            s: _Stream(AudioWriter(paths[s], out_rate, channels, fmt, depth),
                       None if s == stems[-1] or out_rate == PROC_RATE
                       else soxr.ResampleStream(PROC_RATE, out_rate, channels, dtype="float32", quality="HQ"),
                       channels)
            for s in stems
        }
        total = max(1, int(np.ceil(info.duration_s / (WINDOW_S - PREROLL_S - FADE_S))))
        notes: dict[str, object] = {}
        try:
            self._separate(ctx, sep_type, stems, streams, out_rate, total, notes)
        finally:
            for st in streams.values():
                st.writer.close()
        elapsed = time.monotonic() - started

        duration = streams[stems[-1]].frames / out_rate
        manifest = {
            "separation_type": sep_type.value,
            "sample_rate": out_rate,
            "bit_depth": depth,
            "output_format": fmt,
            "channels": channels,
            "duration_s": round(duration, 6),
            "input": {"sample_rate": info.sample_rate, "channels": channels, "duration_s": round(info.duration_s, 6)},
            "stems": [
                {"name": s, "file": paths[s].name, "duration_s": round(streams[s].frames / out_rate, 6),
                 "rms": _rms(streams[s]), "rms_dbfs": _dbfs(_rms(streams[s])),
                 "peak_dbfs": _dbfs(streams[s].peak)}
                for s in stems
            ],
            "method": notes,
            "realtime_factor": round(elapsed / max(info.duration_s, 1e-9), 4),
        }
        manifest_path = ctx.workdir / "manifest.json"
        manifest_path.write_text(json.dumps(manifest, indent=2))
        ctx.hook("manifest", completed=1, total=1)
        results = [ResultFile(paths[s].name, paths[s], CONTENT_TYPES[fmt], {"stem": s}) for s in stems]
        results.append(ResultFile("manifest.json", manifest_path, "application/json"))
        return results

    # ------------------------------------------------------------------ streaming

    def _separate(self, ctx: JobContext, sep_type: SeparationType, stems: tuple[str, ...],
                  streams: dict[str, _Stream], out_rate: int, total: int, notes: dict) -> None:
        """Windows at 48 kHz -> computed stems (all but the last) -> crossfaded -> written.

        The last stem is ``input - others`` on the input decoded straight to ``out_rate``.
        """
        computed = stems[:-1]
        residual = streams[stems[-1]]
        reference = _Reader(iter_blocks(ctx.input_path, 1 << 16, out_rate), residual.channels)
        tail: dict[str, np.ndarray] | None = None
        fade_n, pre_n = int(FADE_S * PROC_RATE), int(PREROLL_S * PROC_RATE)
        fade_in = (np.sin(0.5 * np.pi * (np.arange(fade_n) + 0.5) / fade_n) ** 2).astype(np.float32)
        for done, (window, emit_from, is_last) in enumerate(_windows(ctx.input_path, WINDOW_S, PREROLL_S + FADE_S), start=1):
            out = self._window(sep_type, window, notes)               # stem -> (C, L) at 48 kHz
            if tail is not None:                                        # crossfade with the previous window
                for s in computed:
                    w = out[s][:, pre_n:pre_n + fade_n]
                    out[s][:, pre_n:pre_n + fade_n] = tail[s] * (1 - fade_in) + w * fade_in
            end = window.shape[1] if is_last else window.shape[1] - fade_n
            tail = {s: out[s][:, end:] for s in computed} if not is_last else None
            for s in computed:
                streams[s].push(out[s][:, emit_from:end], last=is_last)
            n = min(streams[s].available() for s in computed) if computed else 0
            if n:
                ref = reference.read(n)
                n = ref.shape[1]
                parts = [streams[s].take(n) for s in computed]
                for s, p in zip(computed, parts, strict=True):
                    streams[s].write(p)
                residual.write(ref - sum(parts))
            ctx.hook("separate", completed=min(done, total), total=total)
        # Flush: align every stem on the input's own length at the output rate.
        ref = reference.read_all()
        n = ref.shape[1]
        if n:
            parts = []
            for s in computed:
                have = streams[s].take(streams[s].available()) if streams[s].available() else ref[:, :0]
                parts.append(np.pad(have, ((0, 0), (0, max(0, n - have.shape[1]))))[:, :n])
                streams[s].write(parts[-1])
            residual.write(ref - sum(parts))
        ctx.hook("separate", completed=total, total=total)

    # ------------------------------------------------------------------ one window

    def _window(self, sep_type: SeparationType, x: np.ndarray, notes: dict) -> dict[str, np.ndarray]:
        """``x``: (C, L) at 48 kHz -> the computed stems, each (C, L)."""
        speech = self._speech(x, notes)                                            # (C, L)
        if sep_type == SeparationType.dialogue_me:
            return {"speech": speech}
        if sep_type == SeparationType.dialogue_music_effect:
            res = self.models.infer("music_effect_separator", {"audio": x - speech}, {"sample_rate": PROC_RATE})
            notes["music_effect"] = parse_json_output(res["method"])
            return {"speech": speech, "music": res["music"].reshape(x.shape).astype(np.float32)}
        gate, how = self._word_gate(speech, notes)                                # (L,)
        notes["speech_gate"] = how
        return {"speech": speech * gate[None]}

    def _speech(self, x: np.ndarray, notes: dict | None = None) -> np.ndarray:
        """DeepFilterNet3 on the channel mean, then ``speech_mask`` on every channel: the mask that
        turns DeepFilterNet3's output into the dialogue stem."""
        mono = x.mean(axis=0)
        enhanced = self.models.infer("speech_enhancer", {"audio": mono.astype(np.float32)})["audio"]
        enhanced = np.asarray(enhanced, np.float32).reshape(-1)[: mono.shape[0]]
        res = self.models.infer("speech_mask", {"audio": x.astype(np.float32), "enhanced": enhanced})
        if notes is not None:
            notes.setdefault("speech", f"deepfilternet3 + {parse_json_output(res['method'])} mask")
        return np.asarray(res["speech"], np.float32).reshape(x.shape)

    def _word_gate(self, speech: np.ndarray, notes: dict) -> tuple[np.ndarray, str]:
        """A 0..1 gate (L,) that is 1 over the VAD regions that hold words (``separation/gate.py``)."""
        mono16 = resample(speech.mean(axis=0, keepdims=True), PROC_RATE, ASR_RATE)[0]
        vad = self._vad_regions(mono16)
        words = self._words(mono16)
        if words is None:
            regions, how = word_gate.dilate(vad or [], word_gate.REGION_PAD_S), "vad (whisper unavailable)"
        elif vad is None:
            regions, how = word_gate.dilate([w for decode in words for w in decode], word_gate.WORDS_ONLY_PAD_S), "whisper words"
        else:
            regions, how = word_gate.worded_regions(vad, *words), "vad regions with whisper words"
        return word_gate.gate(regions, speech.shape[1], PROC_RATE), how

    def _words(self, mono16: np.ndarray) -> list[list[tuple[float, float]]] | None:
        """The spoken words' spans of two decodes: beam search (Whisper's default) and greedy."""
        clips = np.array([[0.0, len(mono16) / ASR_RATE]], np.float32)
        try:
            decodes = [self.models.infer("whisper", {"audio": mono16, "clips": clips},
                                         {"task": "transcribe", "language": "auto", "beam_size": beam})
                       for beam in word_gate.BEAMS]
        except ModelNotFound:  # not served here (not registered, or cannot load): the VAD gate alone
            return None
        return [word_gate.spoken_words(parse_json_output(res["result"])["segments"]) for res in decodes]

    def _vad_regions(self, mono16: np.ndarray) -> list[tuple[float, float]] | None:
        for name in ("vad_silero", "vad_ten", "vad_webrtc"):
            try:
                res = self.models.infer(name, {"audio": mono16})
            except ModelError:
                continue
            probs, hop = np.asarray(res["probs"]).reshape(-1), float(np.asarray(res["hop_s"]).reshape(-1)[0])
            return speech_regions(probs, hop, RAW_VAD)
        return None


# ---------------------------------------------------------------------- helpers

def _windows(path, window_s: float, overlap_s: float) -> Iterator[tuple[np.ndarray, int, bool]]:
    """Yield ``(window (C, <=L), emit_from, is_last)`` at 48 kHz; windows overlap by ``overlap_s``.

    ``emit_from`` is 0 for the first window and the pre-roll length for later ones (the
    pre-roll was emitted by the previous window). Memory: one window plus one block.
    """
    win, ov = int(window_s * PROC_RATE), int(overlap_s * PROC_RATE)
    pre = int(PREROLL_S * PROC_RATE)
    buf: np.ndarray | None = None
    first = True
    for block in iter_blocks(path, win - ov, PROC_RATE):
        buf = block if buf is None else np.concatenate([buf, block], axis=1)
        while buf.shape[1] > win:
            yield buf[:, :win], (0 if first else pre), False
            first = False
            buf = buf[:, win - ov:]
    if buf is None:
        raise InvalidAudio("the file holds no audio samples")
    yield buf, (0 if first else pre), True


class _Reader:
    """Pull exactly n frames from a block iterator."""

    def __init__(self, blocks: Iterator[np.ndarray], channels: int) -> None:
        self._blocks = blocks
        self._channels = channels
        self._buf: list[np.ndarray] = []
        self._n = 0

    def read(self, n: int) -> np.ndarray:
        while self._n < n:
            b = next(self._blocks, None)
            if b is None:
                break
            self._buf.append(b)
            self._n += b.shape[1]
        joined = np.concatenate(self._buf, axis=1) if self._buf else None
        if joined is None:
            return np.zeros((self._channels, 0), np.float32)
        out, rest = joined[:, :n], joined[:, n:]
        self._buf, self._n = ([rest] if rest.shape[1] else []), rest.shape[1]
        return out

    def read_all(self) -> np.ndarray:
        for b in self._blocks:
            self._buf.append(b)
            self._n += b.shape[1]
        return self.read(self._n)


def _rms(st: _Stream) -> float:
    return round(float(np.sqrt(st.sum_sq / max(1, st.frames * st.channels))), 8)


def _dbfs(value: float) -> float | None:
    return round(20 * np.log10(value), 2) if value > 0 else None
