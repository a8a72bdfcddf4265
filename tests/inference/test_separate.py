"""Separation pipeline, end to end through the real models (DeepFilterNet3, the music/effect
network, Whisper + VAD), on mixtures generated here from held-out material.

Each pipeline run is done once per module (fixtures) and asserted on in several tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import services.inference.models  # noqa: F401 - registers the models
from services.common.audio import read_audio
from services.inference.errors import InvalidAudio, InvalidParams, ModelNotFound
from services.inference.model_client import InProcessModelClient
from services.inference.pipeline import JobContext, parse_params
from services.inference.pipelines import separate as separate_mod
from services.inference.pipelines.separate import SeparatePipeline
from tests.inference.separate_audio import laugh, vocal
from training.separation import heldout as H

R = 48000


@pytest.fixture(scope="module")
def pipeline() -> SeparatePipeline:
    return SeparatePipeline(InProcessModelClient())


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("separate")


class Run:
    def __init__(self, pipeline: SeparatePipeline, workdir: Path, src: Path, **params) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.events: list[tuple[str, float | None, float | None]] = []

        def hook(step, artifact=None, *, completed=None, total=None):
            self.events.append((step, completed, total))

        ctx = JobContext("job", "acct", "separate", parse_params("separate", {"file_id": "f", **params}), {"file": src},
                         workdir, hook)
        self.results = pipeline.run(ctx)
        self.files = {r.name: r for r in self.results}
        self.manifest = json.loads((workdir / "manifest.json").read_text())

    def stem(self, name: str) -> np.ndarray:
        path = next(r.path for r in self.results if r.name.startswith(name + "."))
        return sf.read(str(path), dtype="float32", always_2d=True)[0].T


def _write(path: Path, audio: np.ndarray, rate: int) -> Path:
    sf.write(str(path), np.atleast_2d(audio).T, rate, subtype="FLOAT")
    return path


# ---------------------------------------------------------------- dialogue-music-effect, long file

@pytest.fixture(scope="module")
def dme(pipeline, tmp):
    mx = H.mixture(3, 24.0, R, music_db=-6.0, effect_db=-6.0)      # longer than one 20 s window
    src = _write(tmp / "dme.wav", mx.mix, R)
    return mx, Run(pipeline, tmp / "dme", src, separation_type="dialogue-music-effect", bit_depth=32)


def test_dme_stems_and_manifest(dme):
    _, run = dme
    assert list(run.files) == ["speech.wav", "music.wav", "effect.wav", "manifest.json"]
    assert [s["name"] for s in run.manifest["stems"]] == ["speech", "music", "effect"]
    for s in run.manifest["stems"]:
        assert s["duration_s"] == pytest.approx(24.0, abs=1e-3)
        assert s["rms"] > 1e-4 and s["rms_dbfs"] < 0
    assert run.manifest["method"]["music_effect"] == "hybrid"
    steps = [e[0] for e in run.events]
    assert steps[0] == "probe" and steps[-1] == "manifest" and steps.count("separate") >= 2
    sep = [e for e in run.events if e[0] == "separate"]
    assert sep[-1][1] == sep[-1][2]


def test_dme_stems_sum_to_input(dme):
    mx, run = dme
    total = run.stem("speech") + run.stem("music") + run.stem("effect")
    assert total.shape == (1, len(mx.mix))
    assert np.max(np.abs(total[0] - mx.mix)) < 1e-4


def test_dme_quality(dme):
    mx, run = dme
    speech, music, effect = run.stem("speech")[0], run.stem("music")[0], run.stem("effect")[0]
    assert H.si_sdr(speech, mx.speech) > H.si_sdr(mx.mix, mx.speech) + 5.0
    residual = mx.mix - speech
    # the split must beat handing the whole residual to either stem
    assert H.si_sdr(music, mx.music) > H.si_sdr(residual, mx.music) + 1.0
    assert H.si_sdr(effect, mx.effect) > H.si_sdr(residual, mx.effect) + 1.0


# ---------------------------------------------------------------- dialogue-me on two kinds of background

@pytest.mark.parametrize("music_db,effect_db", [(-3.0, -120.0), (-120.0, -3.0)], ids=["music", "effects"])
def test_dialogue_me_speech_improves(pipeline, tmp, music_db, effect_db):
    mx = H.mixture(5, 8.0, R, music_db=music_db, effect_db=effect_db)
    src = _write(tmp / f"me{music_db}.wav", mx.mix, R)
    run = Run(pipeline, tmp / f"me{music_db}", src, separation_type="dialogue-me", bit_depth=32)
    assert list(run.files) == ["speech.wav", "me.wav", "manifest.json"]
    speech, me = run.stem("speech")[0], run.stem("me")[0]
    before = H.si_sdr(mx.mix, mx.speech)
    assert H.si_sdr(speech, mx.speech) > before + 5.0
    assert np.max(np.abs(speech + me - mx.mix)) < 1e-4
    background = mx.music + mx.effect
    assert H.si_sdr(me, background) > H.si_sdr(mx.mix, background) + 5.0


# ---------------------------------------------------------------- chunk borders

def test_chunk_borders_join_without_discontinuity(pipeline, tmp, monkeypatch):
    mx = H.mixture(7, 10.0, R, music_db=-6.0, effect_db=-10.0)
    src = _write(tmp / "chunks.wav", mx.mix, R)
    whole = Run(pipeline, tmp / "whole", src, separation_type="dialogue-me", bit_depth=32).stem("speech")[0]
    monkeypatch.setattr(separate_mod, "WINDOW_S", 4.0)                  # borders every 2.5 s
    run = Run(pipeline, tmp / "chunked", src, separation_type="dialogue-me", bit_depth=32)
    chunked = run.stem("speech")[0]
    assert sum(1 for e in run.events if e[0] == "separate") >= 4
    assert np.max(np.abs(chunked + run.stem("me")[0] - mx.mix)) < 1e-4
    step = int((4.0 - separate_mod.PREROLL_S - separate_mod.FADE_S) * R)
    pre, fade = int(separate_mod.PREROLL_S * R), int(separate_mod.FADE_S * R)
    jump_whole = np.max(np.abs(np.diff(whole)))
    for k in range(1, 4):                                               # each crossfade region
        a, b = k * step + pre - 2400, k * step + pre + fade + 2400
        seg_w, seg_c = whole[a:b], chunked[a:b]
        err = 10 * np.log10(np.sum(seg_w ** 2) / (np.sum((seg_w - seg_c) ** 2) + 1e-12))
        assert err > 15.0, f"border {k}: chunked differs from one-shot by {err:.1f} dB SNR"
        assert np.max(np.abs(np.diff(seg_c))) <= 1.2 * jump_whole + 1e-4   # no click at the joins


# ---------------------------------------------------------------- formats, depths, rates, channels

@pytest.fixture(scope="module")
def stereo_src(tmp):
    """Speech on the left, music on the right, 44.1 kHz stereo."""
    mx = H.mixture(9, 4.0, 44100, music_db=-120.0, effect_db=-120.0)
    music = H.music(9, 4.0, 44100) * 0.05
    audio = np.stack([mx.speech + 0.1 * music, 0.1 * mx.speech + music])
    return _write(tmp / "stereo.wav", audio, 44100), audio


@pytest.mark.parametrize("fmt,depth,rate,subtype", [
    ("flac", 24, 44100, "PCM_24"), ("flac", 16, 22050, "PCM_16"), ("wav", 8, 16000, "PCM_U8"),
    ("wav", 24, 96000, "PCM_24"), ("mp3", 16, 44100, "MPEG_LAYER_III"), ("ogg", 16, 48000, "VORBIS"),
])
def test_formats_round_trip(pipeline, tmp, stereo_src, fmt, depth, rate, subtype):
    src, _ = stereo_src
    run = Run(pipeline, tmp / f"fmt-{fmt}{depth}{rate}", src, separation_type="dialogue-me",
              output_format=fmt, bit_depth=depth, sample_rate=rate)
    assert list(run.files) == [f"speech.{fmt}", f"me.{fmt}", "manifest.json"]
    assert run.files[f"speech.{fmt}"].content_type.startswith("audio/")
    for name in ("speech", "me"):
        info = sf.info(str(run.files[f"{name}.{fmt}"].path))
        assert info.samplerate == rate and info.channels == 2 and info.subtype == subtype
        decoded, decoded_rate = read_audio(run.files[f"{name}.{fmt}"].path)
        assert decoded_rate == rate and decoded.shape[0] == 2
        # lossy codecs pad a little at the ends; PCM is exact
        tol = 0.0 if fmt in ("wav", "flac") else 0.08
        assert abs(decoded.shape[1] / rate - 4.0) <= tol + 1.0 / rate
    assert run.manifest["sample_rate"] == rate and run.manifest["bit_depth"] == depth


def test_stereo_stays_stereo(pipeline, tmp, stereo_src):
    src, audio = stereo_src
    run = Run(pipeline, tmp / "stereo", src, separation_type="dialogue-me", bit_depth=32, sample_rate=44100)
    speech, me = run.stem("speech"), run.stem("me")
    assert speech.shape == audio.shape
    assert np.max(np.abs(speech + me - audio)) < 1e-4
    left, right = np.sum(speech[0] ** 2), np.sum(speech[1] ** 2)
    assert left > 10 * right                    # speech sits left: its stem follows the panning


@pytest.mark.parametrize("rate", [8000, 96000])
def test_any_input_rate(pipeline, tmp, rate):
    mx = H.mixture(11, 4.0, rate, music_db=-6.0, effect_db=-120.0)
    src = _write(tmp / f"in{rate}.wav", mx.mix, rate)
    same = Run(pipeline, tmp / f"rate{rate}", src, separation_type="dialogue-me", bit_depth=32, sample_rate=rate)
    speech, me = same.stem("speech"), same.stem("me")
    assert speech.shape == (1, len(mx.mix))
    assert np.max(np.abs(speech[0] + me[0] - mx.mix)) < 1e-4
    assert H.si_sdr(speech[0], mx.speech) > H.si_sdr(mx.mix, mx.speech) + 3.0
    up = Run(pipeline, tmp / f"rate{rate}-48k", src, separation_type="dialogue-me", bit_depth=16)
    info = sf.info(str(up.files["speech.wav"].path))
    assert info.samplerate == 48000 and info.frames == pytest.approx(4.0 * 48000, abs=2)


# ---------------------------------------------------------------- speech-nonlingual

@pytest.fixture(scope="module")
def nonlingual(pipeline, tmp):
    rng = np.random.default_rng(0)
    gap = np.zeros(int(0.4 * R), np.float32)
    parts = [("gap", gap), ("speech", H.speech("Good morning everyone, thank you for coming today.", "en-us", R)),
             ("gap", gap), ("hum", vocal("mm", 2.0, R)), ("gap", gap), ("vowel", vocal("aa", 2.0, R, 180.0, 2)),
             ("gap", gap), ("speech", H.speech("Let us begin with the first question on the list.", "en-us", R)),
             ("gap", gap), ("laugh", laugh(1.5, R)), ("gap", gap)]
    x = np.concatenate([p for _, p in parts])
    x = x + 0.003 * rng.standard_normal(len(x)).astype(np.float32)
    src = _write(tmp / "nonlingual.wav", x, R)
    return parts, x, Run(pipeline, tmp / "nonlingual", src, separation_type="speech-nonlingual", bit_depth=32)


def test_nonlingual_stems_sum(nonlingual):
    _, x, run = nonlingual
    assert list(run.files) == ["speech.wav", "nonlingual.wav", "manifest.json"]
    assert run.manifest["method"]["speech_gate"] == "vad regions with whisper words"
    assert np.max(np.abs(run.stem("speech")[0] + run.stem("nonlingual")[0] - x)) < 1e-4


def test_nonlingual_splits_words_from_vocal_sounds(nonlingual):
    parts, _, run = nonlingual
    speech, other = run.stem("speech")[0], run.stem("nonlingual")[0]
    pos = 0
    for name, p in parts:
        a, b = pos, pos + len(p)
        pos = b
        if name == "gap":
            continue
        share = np.sum(speech[a:b] ** 2) / (np.sum(speech[a:b] ** 2) + np.sum(other[a:b] ** 2))
        if name == "speech":
            assert share > 0.8, f"spoken words: only {share:.2f} of the energy in the speech stem"
        else:
            assert share < 0.1, f"{name}: {share:.2f} of the energy leaked into the speech stem"


def test_without_whisper_the_gate_is_the_vads_regions_widened(pipeline, nonlingual):
    """A worker that does not serve Whisper still separates: the gate is the VAD's regions with
    the same 0.1 s widening as the word gate, and the manifest says which gate ran."""
    from services.inference.separation import gate as word_gate

    class NoWhisper:
        def infer(self, name, inputs, parameters=None):
            if name == "whisper":
                raise ModelNotFound("whisper is not served here")
            return pipeline.models.infer(name, inputs, parameters)

    parts, x, _ = nonlingual
    blind = SeparatePipeline(NoWhisper())
    speech = blind._speech(x[None])
    gate, how = blind._word_gate(speech, {})
    assert how == "vad (whisper unavailable)"
    mono16 = separate_mod.resample(speech, separate_mod.PROC_RATE, separate_mod.ASR_RATE)[0]
    vad = blind._vad_regions(mono16)
    assert vad and np.array_equal(gate, word_gate.gate(word_gate.dilate(vad, 0.1), len(x), R))
    first = len(parts[0][1])          # the first sentence, after the opening gap
    assert gate[first + int(0.2 * R): first + int(0.8 * R)].min() == 1.0


# ---------------------------------------------------------------- errors

def test_bad_depth_for_format_is_validation_error(pipeline, tmp, stereo_src):
    src, _ = stereo_src
    with pytest.raises(InvalidParams) as err:
        Run(pipeline, tmp / "bad1", src, output_format="flac", bit_depth=32)
    assert err.value.code == "validation_error" and "flac" in err.value.message


def test_mp3_rate_is_validation_error(pipeline, tmp, stereo_src):
    src, _ = stereo_src
    with pytest.raises(InvalidParams) as err:
        Run(pipeline, tmp / "bad2", src, output_format="mp3", sample_rate=96000)
    assert err.value.code == "validation_error"


def test_not_audio_is_invalid_audio(pipeline, tmp):
    src = tmp / "notes.wav"
    src.write_text("this is not audio\n" * 100)
    with pytest.raises(InvalidAudio) as err:
        Run(pipeline, tmp / "bad3", src)
    assert err.value.code == "invalid_audio"


# ---------------------------------------------------------------- edge cases

@pytest.mark.parametrize("sep_type", ["dialogue-me", "dialogue-music-effect", "speech-nonlingual"])
@pytest.mark.parametrize("frames,channels,rate", [(500, 1, 48000), (22050, 6, 22050)], ids=["10ms", "5.1"])
def test_tiny_and_multichannel_inputs(pipeline, tmp, sep_type, frames, channels, rate):
    x = (0.05 * np.random.default_rng(frames).standard_normal((channels, frames))).astype(np.float32)
    src = _write(tmp / f"edge{frames}.wav", x, rate)
    run = Run(pipeline, tmp / f"edge{frames}-{sep_type}", src, separation_type=sep_type, bit_depth=32,
              sample_rate=rate)
    stems = [run.stem(s["name"]) for s in run.manifest["stems"]]
    assert all(s.shape == x.shape for s in stems)
    assert np.max(np.abs(sum(stems) - x)) < 1e-4
