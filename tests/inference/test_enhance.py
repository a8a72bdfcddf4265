"""The enhance pipeline, end to end on generated audio, and its DSP parts.

Every option is checked to move the output the way it should, measured: SI-SDR up with
denoise, band energies per EQ preset, crest factor down with compression, loudness on target
and true peak under the ceiling, rates/channels/formats kept, silence kept silent, clipped
input tamed, and chunk borders joined without clicks. Speech is espeak-ng; noise is seeded.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import scipy.signal
import soundfile as sf
import soxr
from pydantic import ValidationError

import services.inference.models  # noqa: F401  (registers speech_enhancer)
from services.common.params import EnhanceParams
from services.inference.dsp import eq as eqmod
from services.inference.dsp.dynamics import TruePeakLimiter
from services.inference.dsp.loudness import LevelStats, LoudnessMeter, TruePeakMeter
from services.inference.dsp.overlap import ChunkedProcessor
from services.inference.errors import InvalidAudio, InvalidParams
from services.inference.model_client import InProcessModelClient
from services.inference.pipeline import JobContext, parse_params
from services.inference.pipelines.enhance import EnhancePipeline, atten_lim_db
from tools.metrics import si_sdr

TEXT = ("Please remember to water the plants while I am away. The museum has a new exhibition "
        "about ancient ships, and the garden looks beautiful after the rain.")


# ------------------------------------------------------------------ audio generators
@pytest.fixture(scope="module")
def speech48() -> np.ndarray:
    """About 8 s of espeak-ng speech at 48 kHz, peak -6 dBFS, float32 (frames,)."""
    assert shutil.which("espeak-ng"), "espeak-ng is not installed: `make install` takes it from deploy/apt-packages.txt"
    out = subprocess.run(["espeak-ng", "--stdout", "-s", "150", TEXT], check=True, capture_output=True).stdout
    import io
    x, rate = sf.read(io.BytesIO(out), dtype="float32")
    x = soxr.resample(x, rate, 48000).astype(np.float32)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def white(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    noise = noise * np.sqrt(np.mean(speech**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return (speech + noise).astype(np.float32)


def true_peak_4x(x: np.ndarray, rate: int) -> float:
    """Independent true-peak check: soxr 4x (8x at low rates) oversampling."""
    up = soxr.resample(np.atleast_2d(x).T, rate, rate * (8 if rate < 44100 else 4), quality="VHQ")
    return 20 * math.log10(max(np.abs(up).max(), 1e-12))


def band_db(x: np.ndarray, rate: int, lo: float, hi: float) -> float:
    f, p = scipy.signal.welch(np.atleast_2d(x).mean(axis=0), rate, nperseg=8192)
    return 10 * math.log10(p[(f >= lo) & (f < hi)].sum() + 1e-30)


# ------------------------------------------------------------------ pipeline runner
@pytest.fixture(scope="module")
def pipeline() -> EnhancePipeline:
    return EnhancePipeline(InProcessModelClient())


class Runner:
    def __init__(self, pipe: EnhancePipeline, root: Path) -> None:
        self.pipe, self.root, self.n = pipe, root, 0
        self.events: list[tuple[str, float | None, float | None]] = []

    def hook(self, step, artifact=None, *, completed=None, total=None):
        self.events.append((step, completed, total))

    def __call__(self, audio: np.ndarray, rate: int, subtype: str = "FLOAT", **params):
        self.n += 1
        work = self.root / f"job{self.n}"
        work.mkdir()
        src = work / "input.wav"
        sf.write(src, np.atleast_2d(audio).T, rate, subtype=subtype)
        ctx = JobContext(f"job{self.n}", "acct", "enhance", parse_params("enhance", {"file_id": "f1", **params}), {"file": src},
                         work, self.hook)
        results = self.pipe.run(ctx)
        by_name = {r.name: r for r in results}
        report = json.loads(by_name["report.json"].path.read_text())
        audio_result = next(r for r in results if r.name.startswith("enhanced."))
        y, out_rate = sf.read(audio_result.path, dtype="float32", always_2d=True)
        return y.T, out_rate, report, audio_result


@pytest.fixture(scope="module")
def run(pipeline, tmp_path_factory) -> Runner:
    return Runner(pipeline, tmp_path_factory.mktemp("enhance"))


# ------------------------------------------------------------------ denoise
@pytest.fixture(scope="module")
def denoised(run, speech48):
    """0 dB SNR speech+white noise through nr = 0, 0.5, 1; reference = clean through the same EQ."""
    noisy = mix(speech48, white(speech48.size, 1), 0.0)
    ref, *_ = run(speech48, 48000, denoise=False, normalize=False, bit_depth=32)
    outs = {nr: run(noisy, 48000, noise_reduction=nr, normalize=False, bit_depth=32) for nr in (0.0, 0.5, 1.0)}
    off = run(noisy, 48000, denoise=False, normalize=False, bit_depth=32)
    return noisy, ref[0], outs, off


def test_denoise_raises_si_sdr_with_strength(denoised):
    _noisy, ref, outs, _ = denoised
    base = si_sdr(outs[0.0][0][0], ref)
    half = si_sdr(outs[0.5][0][0], ref)
    full = si_sdr(outs[1.0][0][0], ref)
    assert abs(base) < 1.5                       # 0 dB SNR in, strength 0: nothing removed
    assert half > base + 8.0
    assert full > half - 0.5 and full > base + 9.0


def test_noise_reduction_zero_leaves_audio_as_denoise_off(denoised):
    _, _, outs, off = denoised
    np.testing.assert_array_equal(outs[0.0][0], off[0])
    assert outs[0.0][2]["settings"]["denoise"]["method"] is None


def test_report_shows_snr_up_and_settings(denoised):
    _, _, outs, _ = denoised
    report = outs[0.5][2]
    assert report["settings"]["denoise"] == {"enabled": True, "noise_reduction": 0.5, "atten_lim_db": 20.0,
                                             "method": "deepfilternet3"}
    assert report["output"]["snr_estimate_db"] > report["input"]["snr_estimate_db"] + 8
    assert report["output"]["noise_floor_dbfs"] < report["input"]["noise_floor_dbfs"] - 10
    assert outs[1.0][2]["settings"]["denoise"]["atten_lim_db"] is None    # no limit


def test_the_floor_counts_pauses_a_denoiser_took_under_the_silence_line():
    # At full strength DeepFilterNet3 took the pauses of a recorded telephone conversation from
    # -62 to -126 dBFS. The report dropped blocks under -120 dBFS, so its floor became the quietest
    # speech: it read the output's floor 6 dB above the input's and its SNR 6 dB lower.
    rate = 16000
    rng = np.random.default_rng(0)
    speech = 0.1 * rng.standard_normal(rate * 2)                           # -20 dBFS
    pause = 10 ** (-130 / 20) * rng.standard_normal(rate * 2)              # -130 dBFS, not zero
    stats = LevelStats(rate, 1)
    stats.update(np.concatenate([pause, speech, pause])[None].astype(np.float32))
    out = stats.summary()
    assert out["noise_floor_dbfs"] == -120.0                               # at or under the line
    assert out["snr_estimate_db"] > 95
    padded = LevelStats(rate, 1)                                           # digital zeros: padding, not a floor
    padded.update(np.concatenate([np.zeros(rate * 2), speech])[None].astype(np.float32))
    assert padded.summary()["noise_floor_dbfs"] > -100


def test_strength_mapping():
    assert atten_lim_db(0.0) == 0.0 and atten_lim_db(0.5) == 20.0 and atten_lim_db(1.0) == 100.0


def test_fallback_denoiser_when_model_cannot_serve(tmp_path, speech48):
    run = Runner(EnhancePipeline(InProcessModelClient(registry={})), tmp_path)
    clean = speech48[: 48000 * 4]
    noisy = mix(clean, white(clean.size, 2), 0.0)
    ref, *_ = run(clean, 48000, denoise=False, normalize=False, bit_depth=32)
    y, _, report, _ = run(noisy, 48000, noise_reduction=1.0, normalize=False, bit_depth=32)
    assert report["settings"]["denoise"]["method"] == "spectral_gate"
    assert si_sdr(y[0], ref[0]) > si_sdr(noisy, ref[0]) + 3


# ------------------------------------------------------------------ EQ
@pytest.fixture(scope="module")
def eq_outputs(run):
    x = 0.1 * white(48000 * 4, 3)
    return x, {p: run(x, 48000, denoise=False, normalize=False, eq_preset=p, bit_depth=32)[0]
               for p in ("balanced", "vocal", "bass_boost")}


def _change(x, y, lo, hi, rate=48000):
    return band_db(y, rate, lo, hi) - band_db(x, rate, lo, hi)


def test_balanced_cuts_rumble_keeps_tone(eq_outputs):
    x, out = eq_outputs
    y = out["balanced"]
    assert _change(x, y, 10, 20) < -10
    for lo, hi in ((150, 400), (400, 2000), (2000, 6000)):
        assert abs(_change(x, y, lo, hi)) < 0.5, (lo, hi)      # the voice's band is left alone
    assert 0.2 < _change(x, y, 8000, 16000) < 1.5                  # a touch of air


def test_vocal_cuts_mud_and_lifts_presence(eq_outputs):
    x, out = eq_outputs
    y = out["vocal"]
    assert _change(x, y, 20, 60) < -10
    assert _change(x, y, 200, 400) < -2.0
    assert _change(x, y, 2000, 5000) > 2.0


def test_bass_boost_lifts_lows_keeps_headroom(eq_outputs):
    x, out = eq_outputs
    y = out["bass_boost"]
    lift = _change(x, y, 45, 100) - _change(x, y, 1000, 4000)
    assert lift > 4.0
    assert _change(x, y, 1000, 4000) < 0          # the headroom gain


# ------------------------------------------------------------------ alignment and the "none" preset
def xcorr_lag(ref: np.ndarray, y: np.ndarray, max_lag: int = 64) -> float:
    """Lag in samples of the cross-correlation peak of ``y`` against ``ref`` (0 = aligned),
    to a fraction of a sample (parabola through the peak and its neighbours)."""
    n = min(ref.size, y.size)
    c = scipy.signal.correlate(y[:n].astype(np.float64), ref[:n].astype(np.float64), mode="full", method="fft")
    c = c[n - 1 - max_lag: n + max_lag]
    i = int(np.argmax(c))
    a, b, d = c[i - 1], c[i], c[i + 1]
    return i - max_lag + 0.5 * (a - d) / (a - 2 * b + d)


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_every_preset_keeps_the_waveform_in_place(run, speech48, rate):
    """No preset moves the voice: cross-correlation lag 0 with the model, and not even a
    fraction of a sample without it (the minimum-phase EQ this replaced moved espeak speech
    by 0.06-1.8 samples, real recordings with rumble by 2 at 16 kHz and 5 at 48 kHz).
    Every stage is linear in time, so the presets without the model and the model with and
    without a preset cover every combination."""
    clean = soxr.resample(speech48[: 48000 * 2], 48000, rate).astype(np.float32)
    noisy = mix(clean, white(clean.size, 13), 10.0)
    # The EQ alone, every preset; then the model's path (48 kHz and back) with and without EQ.
    cases = [(preset, False) for preset in eqmod.PRESETS] + [("none", True), ("vocal", True)]
    for preset, denoise in cases:
        y, out_rate, report, _ = run(noisy, rate, eq_preset=preset, denoise=denoise, noise_reduction=1.0,
                                     normalize=False, bit_depth=32)
        assert out_rate == rate and y.shape == (1, clean.size)
        lag = xcorr_lag(clean if denoise else noisy, y[0])
        assert round(lag) == 0 and (denoise or abs(lag) < 0.02), (preset, denoise, lag)
        assert report["settings"]["eq"]["preset"] == preset


def test_none_preset_is_denoise_only(run, speech48):
    x = mix(speech48[: 48000 * 2], white(48000 * 2, 14), 10.0)
    y, _, report, _ = run(x, 48000, eq_preset="none", denoise=False, normalize=False, bit_depth=32)
    np.testing.assert_array_equal(y[0], x)                 # nothing else touches the samples
    assert report["settings"]["eq"] == {"preset": "none", "bands": []}


def test_eq_preset_contract():
    assert EnhanceParams(file_id="f").eq_preset == "balanced"           # the default is unchanged
    assert EnhanceParams(file_id="f", eq_preset="none").eq_preset == "none"
    with pytest.raises(ValidationError, match="eq_preset"):
        EnhanceParams(file_id="f", eq_preset="flat")
    assert set(EnhanceParams.model_json_schema()["$defs"]["EqPreset"]["enum"]) == set(eqmod.PRESETS)


def test_linear_phase_eq_streams_exactly():
    """Block by block (odd sizes, a block shorter than the FIR) equals one whole-signal
    convolution with the delay removed, and the output is exactly as long as the input."""
    x = white(50_001, 15)[None].repeat(2, 0)
    fir = eqmod.design_fir("vocal", 16000)
    assert fir.size % 2 == 1 and np.allclose(fir, fir[::-1])          # symmetric: linear phase
    eq = eqmod.build_eq("vocal", 16000, 2)
    out = [eq.process(x[:, i:i + 777]) for i in range(0, x.shape[1], 777)] + [eq.flush()]
    want = scipy.signal.fftconvolve(x, fir[None], axes=1)[:, (fir.size - 1) // 2:][:, :x.shape[1]]
    np.testing.assert_allclose(np.concatenate(out, 1), want, atol=1e-5)
    assert eqmod.build_eq("none", 16000, 2) is None


@pytest.mark.parametrize("rate", [16000, 48000])
def test_fir_follows_the_band_table(rate):
    """The FIR's magnitude is the bands' product within 0.15 dB from 40 Hz up; the table's
    anchors hold (balanced: -6 dB at the 30 Hz highpass, vocal: about +4 dB at 3.2 kHz)."""
    f = np.geomspace(40.0, 0.45 * rate, 200)
    for preset, bands in eqmod.PRESETS.items():
        if not bands:
            continue
        _, h = scipy.signal.freqz(eqmod.design_fir(preset, rate), worN=f, fs=rate)
        want = np.prod([eqmod.band_magnitude(b, f, rate) for b in bands], axis=0)
        np.testing.assert_allclose(20 * np.log10(np.abs(h)), 20 * np.log10(want), atol=0.15, err_msg=preset)
    _, h = scipy.signal.freqz(eqmod.design_fir("balanced", rate), worN=[10.0, 30.0, 1000.0], fs=rate)
    db = 20 * np.log10(np.abs(h))
    assert db[0] < -15 and db[1] == pytest.approx(-6.0, abs=0.2) and abs(db[2]) < 0.2
    _, h = scipy.signal.freqz(eqmod.design_fir("vocal", rate), worN=[3200.0], fs=rate)
    assert 20 * np.log10(abs(h[0])) == pytest.approx(4.0, abs=0.5)


# ------------------------------------------------------------------ compression and loudness
def crest_db(x: np.ndarray) -> float:
    x = np.atleast_2d(x).mean(axis=0)
    return 20 * math.log10(np.percentile(np.abs(x), 99.9) / np.sqrt(np.mean(x**2)))


def test_compression_lowers_crest_factor_keeps_loudness(run, speech48):
    plain, _, rep0, _ = run(speech48, 48000, denoise=False, normalize=False, bit_depth=32)
    comp, _, rep1, _ = run(speech48, 48000, denoise=False, normalize=False, compression=True, bit_depth=32)
    assert crest_db(comp) < crest_db(plain) - 1.5
    assert abs(rep1["output"]["integrated_lufs"] - rep0["output"]["integrated_lufs"]) < 1.0   # make-up gain
    assert rep1["settings"]["compression"]["makeup_gain_db"] > 0
    assert np.abs(comp).max() <= 1.0


@pytest.mark.parametrize("target", [-16.0, -23.0, -13.0])
def test_normalize_hits_target_under_true_peak_ceiling(run, speech48, target):
    noisy = mix(speech48, white(speech48.size, 4), 15.0) * 0.2     # about -36 LUFS
    y, rate, report, _ = run(noisy, 48000, target_lufs=target, compression=target > -14, bit_depth=32)
    lufs = pyloudnorm.Meter(rate).integrated_loudness(y.T)
    assert abs(lufs - target) < 0.5
    assert true_peak_4x(y, rate) <= -1.0 + 0.05
    assert report["output"]["true_peak_dbtp"] <= -1.0
    assert abs(report["output"]["integrated_lufs"] - lufs) < 0.1


def test_unreachable_target_stops_at_the_ceiling_and_says_so(run, speech48):
    y, rate, report, _ = run(speech48 * 0.2, 48000, target_lufs=-5.0, denoise=False, bit_depth=32)
    assert report["settings"]["normalize"]["target_reached"] is False
    assert true_peak_4x(y, rate) <= -1.0 + 0.05
    assert report["output"]["integrated_lufs"] > -16.0      # as loud as the ceiling allows
    assert report["settings"]["limiter"]["max_reduction_db"] >= -25.0


def test_silence_stays_silent(run):
    y, rate, report, _ = run(np.zeros(48000 * 2, np.float32), 48000)
    assert rate == 48000 and y.shape == (1, 96000)
    assert np.abs(y).max() < 1e-4
    assert report["input"]["integrated_lufs"] is None and report["output"]["integrated_lufs"] is None
    assert report["settings"]["normalize"]["skipped"] == "silence"


def test_clipped_input_is_brought_under_the_ceiling(run, speech48):
    clipped = np.clip(speech48 * 8, -1, 1)
    y, rate, _report, _ = run(clipped, 48000, subtype="PCM_16")
    assert true_peak_4x(y, rate) <= -0.95
    assert abs(pyloudnorm.Meter(rate).integrated_loudness(y.T) + 16.0) < 0.5


# ------------------------------------------------------------------ rates, channels, formats
def test_8khz_mono(run, speech48):
    x = soxr.resample(mix(speech48, white(speech48.size, 5), 5.0), 48000, 8000).astype(np.float32)
    y, rate, report, res = run(x, 8000, subtype="PCM_16")
    assert rate == 8000 and y.shape == (1, x.size)
    assert res.name == "enhanced.wav" and res.content_type == "audio/wav"
    assert report["output"]["snr_estimate_db"] > report["input"]["snr_estimate_db"] + 5
    assert abs(report["output"]["integrated_lufs"] + 16) < 0.5


def test_44k_stereo_channels_processed_independently(run, speech48):
    s = soxr.resample(speech48, 48000, 44100).astype(np.float32)
    left = mix(s, white(s.size, 6), 5.0)
    right = 0.02 * white(s.size, 7)                  # noise only: must stay far quieter than left
    y, rate, report, _ = run(np.stack([left, right]), 44100, subtype="PCM_24", bit_depth=24)
    assert rate == 44100 and y.shape == (2, s.size)
    l_db = 10 * math.log10(np.mean(y[0] ** 2))
    r_db = 10 * math.log10(np.mean(y[1] ** 2) + 1e-20)
    assert l_db - r_db > 20
    assert report["output"]["channels"] == 2


def test_96khz_in_flac_at_another_rate_out(run, speech48):
    x = soxr.resample(mix(speech48, white(speech48.size, 8), 10.0), 48000, 96000).astype(np.float32)
    y96, rate, _, _ = run(x, 96000)
    assert rate == 96000 and y96.shape == (1, x.size)
    y, rate, report, res = run(x, 96000, output_format="flac", sample_rate=22050, bit_depth=24)
    assert rate == 22050 and res.name == "enhanced.flac" and res.content_type == "audio/flac"
    assert abs(y.shape[1] - x.size * 22050 / 96000) <= 2
    assert report["output"]["sample_rate"] == 22050


def test_mp3_output_at_a_high_input_rate(run, speech48):
    x = soxr.resample(speech48, 48000, 96000).astype(np.float32)
    y, rate, _, res = run(x, 96000, output_format="mp3", denoise=False)
    assert res.name == "enhanced.mp3" and rate == 48000 and y.shape[1] > 0


def test_bad_input_is_a_permanent_error(run, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really audio" * 10)
    ctx = JobContext("j", "a", "enhance", parse_params("enhance", {"file_id": "f"}), {"file": bad}, tmp_path)
    with pytest.raises(InvalidAudio) as err:
        run.pipe.run(ctx)
    assert err.value.code == "invalid_audio"
    with pytest.raises(InvalidParams) as err:  # out of contract: refused when the job's params are parsed
        parse_params("enhance", {"file_id": "f", "noise_reduction": 2})
    assert err.value.code == "validation_error"


def test_progress_reaches_every_step(run):
    steps = {e[0] for e in run.events}
    assert {"analyze", "enhance", "render"} <= steps
    renders = [e for e in run.events if e[0] == "render"]
    assert renders[-1][1] == pytest.approx(renders[-1][2])


# ------------------------------------------------------------------ chunk borders
def test_chunk_borders_join_without_clicks(tmp_path, speech48):
    """Small chunks (2 s) against one big window: the join adds no click and little change."""
    pipe = EnhancePipeline(InProcessModelClient())
    pipe.settings = replace(pipe.settings, chunk_s=2.0, warmup_s=0.5, crossfade_s=0.1)
    noisy = mix(speech48, white(speech48.size, 9), 5.0)
    small, _, rep, _ = Runner(pipe, tmp_path)(noisy, 48000, normalize=False, bit_depth=32)
    (tmp_path / "one").mkdir()
    one = Runner(EnhancePipeline(InProcessModelClient()), tmp_path / "one")
    big, *_ = one(noisy, 48000, normalize=False, bit_depth=32)
    assert rep["processing"]["model_calls"] >= 4
    small, big = small[0], big[0]
    hop = int((2.0 - 0.1) * 48000)
    borders = [k * hop for k in range(1, small.size // hop)]
    # 1) Clicks: the high-passed output around each join is no spikier than the audio around it.
    hp = scipy.signal.sosfilt(scipy.signal.butter(4, 8000, "hp", fs=48000, output="sos"), small)
    for b in borders:
        near = np.abs(hp[b - 4800: b + 4800]).max()
        around = np.abs(hp[b - 48000: b + 48000]).max()
        assert near <= around + 1e-6
    # 2) The chunked result stays close to the unchunked one (same model, other windows).
    assert si_sdr(small, big) > 15


# ------------------------------------------------------------------ DSP units
def test_loudness_meter_matches_pyloudnorm_in_blocks():
    rng = np.random.default_rng(10)
    x = (rng.standard_normal((2, 44100 * 6)) * np.linspace(0.01, 0.4, 44100 * 6)).astype(np.float32)
    m = LoudnessMeter(44100, 2)
    for i in range(0, x.shape[1], 9999):
        m.update(x[:, i:i + 9999])
    assert m.integrated() == pytest.approx(pyloudnorm.Meter(44100).integrated_loudness(x.T), abs=0.05)


def test_true_peak_meter_finds_intersample_peaks():
    t = np.arange(48000) / 48000
    x = np.sin(2 * np.pi * 12000 * t + np.pi / 4).astype(np.float32)[None]   # samples at +-0.707
    m = TruePeakMeter(48000, 1)
    for i in range(0, 48000, 4321):
        m.update(x[:, i:i + 4321])
    assert 20 * math.log10(np.abs(x).max()) == pytest.approx(-3.0, abs=0.05)
    assert m.finish() == pytest.approx(0.0, abs=0.2)


def test_limiter_streams_under_ceiling_with_fixed_latency():
    rng = np.random.default_rng(11)
    sos = scipy.signal.butter(8, 20000, fs=48000, output="sos")       # programme, not full-band noise
    x = scipy.signal.sosfilt(sos, rng.standard_normal((2, 48000 * 3)) * 0.1).astype(np.float32)
    x[:, 48000:60000] *= 15
    lim = TruePeakLimiter(48000, 2)
    y = np.concatenate([lim.process(x[:, i:i + 5000]) for i in range(0, x.shape[1], 5000)] + [lim.flush()], 1)
    assert y.shape == x.shape
    assert true_peak_4x(y, 48000) <= -1.0 + 0.05
    np.testing.assert_allclose(y[:, :40000], x[:, :40000], atol=1e-6)   # untouched where no peak


def test_chunked_processor_is_exact_for_a_linear_map():
    x = white(100_003, 12)[None].repeat(2, 0)
    cp = ChunkedProcessor(lambda v: 0.5 * v, 2, 10_000, 2_000, 500)
    out = [b for i in range(0, x.shape[1], 7_000) for b in cp.process(x[:, i:i + 7_000])] + list(cp.flush())
    np.testing.assert_allclose(np.concatenate(out, 1), 0.5 * x, atol=1e-6)
