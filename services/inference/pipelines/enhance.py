"""The enhance job: denoise, EQ, compression, loudness normalisation, as three streaming passes.

::

    analyze  decode (native rate) -> BS.1770 loudness, true peak, noise floor of the input
    enhance  decode (48 kHz when denoising) -> speech_enhancer per channel, in overlapping
             chunks -> EQ preset (linear-phase FIR) -> compressor -> resample to the output
             rate -> float32 scratch file on disk; its loudness and true peak are measured
    render   scratch file -> gain (to the loudness target, or the compressor's make-up)
             -> look-ahead true-peak limiter (-1 dBTP) -> output file; output measured,
             and the gain corrected and the pass re-run if limiting left it off target

Every pass works on blocks of a few seconds, so memory does not grow with the file: a
1-hour stereo file holds one model window per channel and a few blocks, never the decoded
audio (the scratch file lives in the job's workdir). No stage moves the waveform: the
output is sample-aligned with the input for every preset and rate. The model is reached only through
``self.models.infer("speech_enhancer", ...)``; if that model cannot serve (not installed,
no server), a spectral-gate denoiser (``dsp.spectral``) stands in and the report says so.

``noise_reduction`` maps to the model's attenuation limit: 0 -> the model is not run (the
audio passes unchanged), 0 < s < 1 -> ``40 * s`` dB (half strength lets noise fall by at
most 20 dB), 1 -> no limit (as far as the model goes, about 40 dB on white noise).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import soxr

from services.common.audio import CONTENT_TYPES, AudioWriter, InvalidAudio, iter_blocks, probe_rate
from services.common.params import EnhanceParams
from services.inference.dsp import eq as eqmod
from services.inference.dsp.dynamics import COMPRESSOR, LimiterSettings, TruePeakLimiter, build_compressor
from services.inference.dsp.loudness import LevelStats, LoudnessMeter, TruePeakMeter
from services.inference.dsp.overlap import ChunkedProcessor
from services.inference.dsp.spectral import spectral_gate
from services.inference.errors import InvalidParams
from services.inference.pipeline import JobContext, Pipeline, ResultFile

ENHANCER = "speech_enhancer"
ENHANCER_RATE = 48000
MP3_MAX_RATE = 48000


@dataclass(frozen=True)
class EnhanceSettings:
    """Engineering constants of the pipeline (not API parameters)."""

    block_s: float = 8.0             # decode / render block
    chunk_s: float = 20.0            # model window (kept part + crossfade)
    warmup_s: float = 1.0            # model context before each window, discarded
    crossfade_s: float = 0.25        # overlap joined by a raised-cosine crossfade
    max_atten_db: float = 40.0       # noise_reduction 0..1 -> 0..40 dB; 1.0 -> no limit
    max_gain_db: float = 60.0        # normalisation never lifts more than this
    loudness_tolerance_lu: float = 0.3
    render_attempts: int = 5
    max_push_db: float = 12.0        # most extra gain the limiter is asked to absorb
    limiter: LimiterSettings = field(default_factory=LimiterSettings)


def atten_lim_db(noise_reduction: float, max_atten_db: float = 40.0) -> float:
    """The model's attenuation limit for a 0..1 strength (100 = no limit, 0 = bypass)."""
    if noise_reduction >= 1.0:
        return 100.0
    return max(0.0, noise_reduction) * max_atten_db


@dataclass
class Measure:
    """Streaming measurements of one signal."""

    rate: int
    channels: int
    frames: int = 0
    true_peak: bool = True
    loudness: LoudnessMeter = field(init=False)
    peak: TruePeakMeter = field(init=False)
    levels: LevelStats = field(init=False)

    def __post_init__(self) -> None:
        self.loudness = LoudnessMeter(self.rate, self.channels)
        self.peak = TruePeakMeter(self.rate, self.channels)
        self.levels = LevelStats(self.rate, self.channels)

    def update(self, block: np.ndarray) -> None:
        self.frames += block.shape[1]
        self.loudness.update(block)
        if self.true_peak:
            self.peak.update(block)
        self.levels.update(block)

    def report(self) -> dict[str, Any]:
        lufs = self.loudness.integrated()
        tp = self.peak.finish()
        return {
            "sample_rate": self.rate,
            "channels": self.channels,
            "duration_s": round(self.frames / self.rate, 3),
            "integrated_lufs": _num(lufs),
            "true_peak_dbtp": _num(tp),
            **self.levels.summary(),
        }


def _num(v: float) -> float | None:
    return round(v, 2) if math.isfinite(v) else None


def _header_duration(path: Path) -> float | None:
    try:
        with av.open(str(path)) as c:
            return c.duration / 1e6 if c.duration else None
    except av.error.FFmpegError:
        return None


@dataclass
class PostChain:
    """What follows the denoiser, streamed: linear-phase EQ -> compressor -> resampler.

    Every stage keeps the samples where they are (the EQ compensates its FIR delay, the
    compressor has no look-ahead, soxr's stream is delay-free), so the output lines up with
    the input sample for sample. ``process`` may return fewer samples than it was given (the
    EQ's and the resampler's lag); ``finish`` returns the rest.
    """

    work_rate: int
    channels: int
    eq: eqmod.LinearPhaseEQ | None
    compressor: Any
    pre_comp: LoudnessMeter | None
    post_comp: LoudnessMeter | None
    resampler: soxr.ResampleStream | None
    done: int = 0                   # samples (work rate) through the EQ so far

    def _dynamics(self, x: np.ndarray) -> np.ndarray:
        self.done += x.shape[1]
        if self.compressor is not None and x.shape[1]:
            self.pre_comp.update(x)
            x = self.compressor(x, self.work_rate, reset=False)
            self.post_comp.update(x)
        return x

    def process(self, x: np.ndarray) -> np.ndarray:
        x = self._dynamics(self.eq.process(x) if self.eq is not None else x)
        if self.resampler is not None:
            x = self.resampler.resample_chunk(np.ascontiguousarray(x.T), last=False).T
        return x

    def finish(self) -> np.ndarray:
        x = self._dynamics(self.eq.flush()) if self.eq is not None else np.zeros((self.channels, 0), np.float32)
        if self.resampler is not None:
            x = self.resampler.resample_chunk(np.ascontiguousarray(x.T), last=True).T
        return x

    def makeup_db(self) -> float:
        """Loudness the compressor took away (restored when not normalising)."""
        if self.pre_comp is None:
            return 0.0
        before, after = self.pre_comp.integrated(), self.post_comp.integrated()
        return before - after if math.isfinite(before) and math.isfinite(after) else 0.0

    def compression_report(self, p: EnhanceParams) -> dict[str, Any]:
        info: dict[str, Any] = {"enabled": p.compression}
        if self.compressor is not None:
            info.update({"threshold_db_at_reference": COMPRESSOR.threshold_db, "ratio": COMPRESSOR.ratio,
                         "attack_ms": COMPRESSOR.attack_ms, "release_ms": COMPRESSOR.release_ms,
                         "reference_lufs": COMPRESSOR.reference_lufs,
                         "makeup_gain_db": round(self.makeup_db(), 2)})
        return info


class EnhancePipeline(Pipeline):
    job_type = "enhance"
    steps = ("analyze", "enhance", "render")
    settings = EnhanceSettings()

    # ------------------------------------------------------------------ run
    def run(self, ctx: JobContext[EnhanceParams]) -> list[ResultFile]:
        started = time.monotonic()
        p: EnhanceParams = ctx.params
        try:
            source = self._analyze(ctx)                                   # input measurements
            out_rate = self._output_rate(p, source.rate)
            scratch = ctx.workdir / "enhance.scratch.f32"
            stage = self._enhance(ctx, p, source, out_rate, scratch)      # -> scratch file
            out_path = ctx.workdir / f"enhanced.{p.output_format}"
            render = self._render(ctx, p, stage, scratch, out_path)      # -> output file
        finally:
            (ctx.workdir / "enhance.scratch.f32").unlink(missing_ok=True)

        elapsed = time.monotonic() - started
        duration = source.frames / source.rate
        report = {
            "input": source.report(),
            "output": {**render["measure"].report(), "format": p.output_format, "bit_depth": p.bit_depth},
            "settings": {
                "denoise": stage["denoise"],
                "eq": {"preset": p.eq_preset, "bands": eqmod.describe(p.eq_preset)},
                "compression": stage["compression"],
                "normalize": render["normalize"],
                "limiter": render["limiter"],
            },
            "processing": {
                "elapsed_s": round(elapsed, 3),
                "realtime_factor": round(elapsed / duration, 4) if duration else None,
                "model_calls": stage["model_calls"],
                "render_passes": render["passes"],
            },
        }
        report_path = ctx.workdir / "report.json"
        report_path.write_text(json.dumps(report, indent=2))
        return [
            ResultFile(out_path.name, out_path, CONTENT_TYPES[p.output_format],
                       {"sample_rate": out_rate, "channels": source.channels,
                        "integrated_lufs": report["output"]["integrated_lufs"],
                        "true_peak_dbtp": report["output"]["true_peak_dbtp"]}),
            ResultFile("report.json", report_path, "application/json"),
        ]

    # ------------------------------------------------------------ passes
    def _blocks(self, path: Path, rate: int | None, native: int) -> Any:
        frames = max(1024, int(self.settings.block_s * (rate or native)))
        for block in iter_blocks(path, frames, rate if rate and rate != native else None):
            yield np.nan_to_num(block, nan=0.0, posinf=1.0, neginf=-1.0)

    def _analyze(self, ctx: JobContext) -> Measure:
        """Pass 1: loudness, true peak and noise floor of the input, at its own rate."""
        rate = probe_rate(ctx.input_path)
        total = _header_duration(ctx.input_path)
        measure: Measure | None = None
        for block in self._blocks(ctx.input_path, None, rate):
            if measure is None:
                measure = Measure(rate, block.shape[0])
            measure.update(block)
            ctx.hook("analyze", completed=measure.frames / rate, total=total)
        if measure is None or measure.frames == 0:
            raise InvalidAudio("the file holds no audio samples")
        return measure

    def _output_rate(self, p: EnhanceParams, in_rate: int) -> int:
        rate = p.sample_rate or in_rate
        if p.output_format == "mp3" and rate > MP3_MAX_RATE:
            if p.sample_rate:
                raise InvalidParams(f"mp3 cannot hold {rate} Hz (at most {MP3_MAX_RATE})")
            rate = MP3_MAX_RATE
        return rate

    def _denoiser(self, p: EnhanceParams, channels: int, work_rate: int) -> tuple[Any, dict[str, Any]]:
        """The chunked denoiser and its report entry; None when denoising is off or at 0."""
        s = self.settings
        limit = atten_lim_db(p.noise_reduction, s.max_atten_db) if p.denoise else 0.0
        info: dict[str, Any] = {"enabled": p.denoise, "noise_reduction": p.noise_reduction,
                                "atten_lim_db": None if limit >= 100 else limit, "method": None}
        if limit <= 0.0:
            return None, info
        if self.models.is_ready(ENHANCER):
            info["method"] = "deepfilternet3"

            def fn(mono: np.ndarray) -> np.ndarray:
                return self.models.infer(ENHANCER, {"audio": mono}, {"atten_lim_db": limit})["audio"]
        else:  # documented fallback: the model cannot serve here
            info["method"] = "spectral_gate"

            def fn(mono: np.ndarray) -> np.ndarray:
                return spectral_gate(mono, work_rate, limit)
        proc = ChunkedProcessor(fn, channels, int(s.chunk_s * work_rate), int(s.warmup_s * work_rate),
                                int(s.crossfade_s * work_rate))
        return proc, info

    def _post_chain(self, p: EnhanceParams, source: Measure, work_rate: int, out_rate: int) -> PostChain:
        """EQ preset -> compressor -> resampler, run on the denoised stream."""
        channels = source.channels
        comp = build_compressor(source.loudness.integrated()) if p.compression else None
        return PostChain(
            work_rate=work_rate,
            channels=channels,
            eq=eqmod.build_eq(p.eq_preset, work_rate, channels),
            compressor=comp,
            pre_comp=LoudnessMeter(work_rate, channels) if comp is not None else None,
            post_comp=LoudnessMeter(work_rate, channels) if comp is not None else None,
            resampler=(soxr.ResampleStream(work_rate, out_rate, channels, dtype="float32", quality="HQ")
                       if out_rate != work_rate else None),
        )

    def _enhance(self, ctx: JobContext, p: EnhanceParams, source: Measure, out_rate: int,
                 scratch: Path) -> dict[str, Any]:
        """Pass 2: denoise -> EQ -> compressor -> resample; to a float32 scratch file."""
        channels, in_rate = source.channels, source.rate
        duration = source.frames / in_rate
        denoiser, denoise_info = self._denoiser(p, channels, ENHANCER_RATE)
        work_rate = ENHANCER_RATE if denoiser is not None else in_rate
        chain = self._post_chain(p, source, work_rate, out_rate)
        # The scratch signal's true peak only decides whether an un-normalised render needs the
        # limiter; normalising always limits, so it is not measured then.
        measure = Measure(out_rate, channels, true_peak=not p.normalize)

        def write(x: np.ndarray, fh: Any) -> None:
            if x.shape[1]:
                x = np.ascontiguousarray(x, dtype=np.float32)
                measure.update(x)
                fh.write(np.ascontiguousarray(x.T).tobytes())         # interleaved (n, channels)
            ctx.hook("enhance", completed=min(duration, chain.done / work_rate), total=duration)

        with open(scratch, "wb") as fh:
            for block in self._blocks(ctx.input_path, work_rate, in_rate):
                for y in denoiser.process(block) if denoiser is not None else (block,):
                    write(chain.process(y), fh)
            for y in denoiser.flush() if denoiser is not None else ():
                write(chain.process(y), fh)
            write(chain.finish(), fh)
        return {"measure": measure, "denoise": denoise_info, "compression": chain.compression_report(p),
                "makeup_db": chain.makeup_db(), "model_calls": denoiser.calls if denoiser is not None else 0}

    def _render(self, ctx: JobContext, p: EnhanceParams, stage: dict[str, Any], scratch: Path,
                out_path: Path) -> dict[str, Any]:
        """Pass 3: gain -> true-peak limiter -> output file (re-run if off the loudness target)."""
        s = self.settings
        m: Measure = stage["measure"]
        lufs, tp = m.loudness.integrated(), m.peak.finish()
        norm: dict[str, Any] = {"enabled": p.normalize, "target_lufs": p.target_lufs if p.normalize else None,
                                "true_peak_ceiling_dbtp": s.limiter.ceiling_dbtp}
        if p.normalize and math.isfinite(lufs):
            gain = p.target_lufs - lufs
            if gain > s.max_gain_db:
                gain, norm["gain_capped"] = s.max_gain_db, True
        else:
            gain = stage["makeup_db"]
            if p.normalize:
                norm["skipped"] = "silence"
        # Normalising always limits at the ceiling; otherwise the limiter only steps in to
        # stop what would clip (it then holds the ceiling too).
        limit = p.normalize or (math.isfinite(tp) and tp + gain > 0.0)
        passes, last, first_gain = 0, None, gain
        while True:
            passes += 1
            out, reduction = self._render_once(ctx, p, scratch, m, gain, limit, out_path)
            got = out.loudness.integrated()
            miss = p.target_lufs - got if p.normalize and math.isfinite(got) and math.isfinite(lufs) else 0.0
            # Limiting ate loudness: push harder and re-render. Under heavy limiting a dB of gain
            # buys less than a dB of loudness, so step along the measured slope (secant); stop
            # where pushing no longer pays (the programme's own crest factor) or would crush it.
            slope = 1.0
            if last is not None and gain != last[0]:
                slope = (got - last[1]) / (gain - last[0])
            if (abs(miss) <= s.loudness_tolerance_lu or passes >= s.render_attempts or gain >= s.max_gain_db
                    or slope < 0.2 or gain - first_gain >= s.max_push_db):
                break
            last = (gain, got)
            step = miss / float(np.clip(slope, 0.3, 1.0))
            gain = min(s.max_gain_db, first_gain + s.max_push_db, gain + float(np.clip(step, -12.0, 12.0)))
        if p.normalize and math.isfinite(lufs):
            norm["target_reached"] = abs(miss) <= 0.5
        norm["gain_db"] = round(gain, 2)
        return {"measure": out, "normalize": norm, "passes": passes,
                "limiter": {"enabled": limit, "ceiling_dbtp": s.limiter.ceiling_dbtp,
                            "lookahead_ms": s.limiter.lookahead_ms, "release_ms": s.limiter.release_ms,
                            "max_reduction_db": round(reduction, 2)}}

    def _render_once(self, ctx: JobContext, p: EnhanceParams, scratch: Path, m: Measure,
                     gain_db: float, limit: bool, out_path: Path) -> tuple[Measure, float]:
        block = max(1024, int(self.settings.block_s * m.rate))
        frames = m.frames
        out = Measure(m.rate, m.channels)
        limiter = TruePeakLimiter(m.rate, m.channels, self.settings.limiter) if limit else None
        g = np.float32(10 ** (gain_db / 20))
        with AudioWriter(out_path, m.rate, m.channels, p.output_format, p.bit_depth) as writer, \
                open(scratch, "rb") as fh:
            for i in range(0, frames, block):
                x = np.fromfile(fh, np.float32, block * m.channels).reshape(-1, m.channels).T * g  # (ch, n)
                y = limiter.process(x) if limiter is not None else x
                if y.shape[1]:
                    out.update(y)
                    writer.write(y)
                ctx.hook("render", completed=min(frames, i + block) / m.rate, total=frames / m.rate)
            if limiter is not None:
                y = limiter.flush()
                if y.shape[1]:
                    out.update(y)
                    writer.write(y)
        return out, (limiter.reduction_db if limiter is not None else 0.0)


__all__ = ["EnhancePipeline", "EnhanceSettings", "atten_lim_db"]
