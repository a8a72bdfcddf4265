"""The speech mask model: DeepFilterNet3's output turned into the dialogue stem."""

from __future__ import annotations

import numpy as np
import pytest

from services.inference.model_client import InProcessModelClient, ModelError, parse_json_output
from services.inference.models.speech_mask import DFN_SHARE, HOP, N_FFT, RATIO_EXPONENT, SpeechMask
from services.inference.separation.stft import istft, stft
from training.separation import heldout as H

R = 48000


@pytest.fixture(scope="module")
def client() -> InProcessModelClient:
    import services.inference.models  # noqa: F401 - registers the models
    from services.inference.model_client import MODEL_REGISTRY

    return InProcessModelClient(MODEL_REGISTRY)


def _with_enhanced(client, mx):
    enhanced = np.asarray(client.infer("speech_enhancer", {"audio": mx.mix})["audio"], np.float32).reshape(-1)
    return mx, enhanced[: mx.mix.shape[0]]


@pytest.fixture(scope="module")
def mixture(client):
    """Held-out espeak-ng speech under generated music and effects, and DeepFilterNet3's output."""
    return _with_enhanced(client, H.mixture(11, 8.0, R, music_db=-3.0, effect_db=-6.0))


# four espeak-ng voices at four music / effect balances (dB re speech): where the network alone
# lost up to 3.7 dB to DeepFilterNet3 alone (it let the music in)
SYNTHETIC_VOICES = [(101, "en-gb-x-rp", -6, -6), (102, "en-us+f3", -3, -9), (103, "nl", -9, -3), (104, "pt", 0, 0)]


@pytest.fixture(scope="module")
def synthetic_voices(client):
    return [_with_enhanced(client, H.mixture(seed, 8.0, R, music_db=music, effect_db=effect, voice=voice))
            for seed, voice, music, effect in SYNTHETIC_VOICES]


def test_weights_are_committed_small_and_carded():
    model = SpeechMask()
    assert model.weights.exists(), "the trained ONNX weights must ship with the code"
    assert model.weights.stat().st_size < 30_000_000
    card = (model.weights.parent / "SPEECH_MASK_CARD.md").read_text()
    assert "speech_mask.onnx" in card and "SI-SDR" in card


def test_without_weights_it_is_half_deepfilternet3_half_the_ratio_mask_on_every_channel(tmp_path):
    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal((2, R))).astype(np.float32)
    enhanced = (0.5 * x.mean(axis=0)).astype(np.float32)
    model = SpeechMask(weights=tmp_path / "absent.onnx")
    model.load()
    out = model.predict({"audio": x, "enhanced": enhanced}, {})
    assert parse_json_output(out["method"]) == "ratio"
    mag_s = np.abs(stft(enhanced, N_FFT, HOP))
    mag_r = np.abs(stft(x.mean(axis=0) - enhanced, N_FFT, HOP))
    ratio_mask = (mag_s / (mag_s + mag_r + 1e-12)) ** RATIO_EXPONENT
    # DeepFilterNet3's output is half the channel mean here, so its complex ratio is 0.5 everywhere
    mask = DFN_SHARE["ratio"] * 0.5 + (1 - DFN_SHARE["ratio"]) * ratio_mask
    expected = istft(stft(x, N_FFT, HOP) * mask[None], N_FFT, HOP, x.shape[1])
    assert out["speech"].shape == x.shape
    assert np.max(np.abs(out["speech"] - expected)) < 1e-5
    with pytest.raises(ModelError):
        model.predict({"audio": x, "enhanced": enhanced}, {"method": "network"})


def test_on_synthetic_voices_no_mixture_is_below_deepfilternet3_alone(client, mixture, synthetic_voices):
    """espeak-ng voices under generated music and effects: the network's half keeps more than the
    ratio mask's, and neither loses to DeepFilterNet3 alone on any mixture (the network's mask
    alone did, by up to 3.7 dB)."""
    for mx, enhanced in [mixture, *synthetic_voices]:
        got = {}
        for method in ("network", "ratio"):
            out = client.infer("speech_mask", {"audio": mx.mix[None], "enhanced": enhanced}, {"method": method})
            assert parse_json_output(out["method"]) == method
            got[method] = H.si_sdr(out["speech"][0], mx.speech)
        alone = H.si_sdr(enhanced, mx.speech)
        assert got["network"] > max(got["ratio"], alone), (got, alone)
        assert got["ratio"] > alone - 0.1, (got, alone)


def test_stereo_follows_the_panning(client, mixture):
    mx, enhanced = mixture
    stereo = np.stack([mx.mix, 0.25 * mx.mix])
    out = client.infer("speech_mask", {"audio": stereo, "enhanced": 0.625 * enhanced}, {})
    assert out["speech"].shape == stereo.shape
    ratio = np.sqrt(np.mean(out["speech"][1] ** 2) / np.mean(out["speech"][0] ** 2))
    assert abs(ratio - 0.25) < 1e-3


@pytest.mark.parametrize("inputs", [
    {},
    {"audio": np.zeros(R, np.float32)},
    {"audio": np.zeros(R, np.float32), "enhanced": np.zeros(R - 1, np.float32)},
    {"audio": np.zeros((2, 3, 4), np.float32), "enhanced": np.zeros(4, np.float32)},
    {"audio": np.zeros((1, 0), np.float32), "enhanced": np.zeros(0, np.float32)},
])
def test_bad_inputs_are_model_errors(inputs):
    model = SpeechMask()
    model.load()
    with pytest.raises(ModelError):
        model.predict(inputs, {})
    with pytest.raises(ModelError):
        model.predict({"audio": np.zeros(R, np.float32), "enhanced": np.zeros(R, np.float32)}, {"method": "x"})
