"""The speaker-segmentation model (pyannote segmentation-3.0, ONNX) as the diarize turns' speech
detector: what it hears, the frame grid it reports, and the pipeline's use of it block by block."""

from __future__ import annotations

import numpy as np
import pytest

from services.inference.model_client import InProcessModelClient
from services.inference.pipelines.diarize import TURN_MODEL, turn_speech
from tests.inference.audiogen import VOICES, speak
from tests.inference.conftest_diarize import client

RATE = 16000


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """22 s: two espeak-ng sentences (two voices) in faint white noise, with the spans they take."""
    rng = np.random.default_rng(3)
    audio = rng.normal(scale=3e-4, size=22 * RATE).astype(np.float32)
    spans = []
    for start, text, voice in ((2.0, "The library closes early on Sundays.", VOICES[0]),
                               (13.0, "We need more chairs for the guests.", VOICES[1])):
        x = speak(text, voice)
        i = int(start * RATE)
        audio[i:i + len(x)] += 0.3 * x / np.max(np.abs(x))
        spans.append((start, start + len(x) / RATE))
    return audio, spans


def test_it_hears_the_speech_and_not_the_noise_between(scene):
    audio, spans = scene
    out = client().infer(TURN_MODEL, {"audio": audio})
    probs, hop = out["probs"], float(out["hop_s"][0])
    assert hop == pytest.approx(0.01) and len(probs) == -(-len(audio) // 160)
    speech = np.zeros(len(probs), bool)
    for s, e in spans:
        speech[int((s + 0.2) / hop):int((e - 0.2) / hop)] = True
    quiet = np.ones(len(probs), bool)
    for s, e in spans:
        quiet[int((s - 0.5) / hop):int((e + 0.5) / hop)] = False
    assert np.mean(probs[speech] >= 0.5) > 0.9, np.mean(probs[speech])
    assert np.mean(probs[quiet] < 0.5) > 0.95, np.mean(probs[quiet])


def test_short_and_empty_audio():
    model = client()
    assert len(model.infer(TURN_MODEL, {"audio": np.zeros(3 * RATE + 7, np.float32)})["probs"]) == 301
    assert len(model.infer(TURN_MODEL, {"audio": np.zeros(0, np.float32)})["probs"]) == 0


def test_a_block_is_heard_after_its_context_and_only_its_frames_are_kept(scene):
    """The pipeline sends 60 s blocks, each after the 10 s before it: the frames returned are the
    block's, and they are what the model says of that stretch heard after its context."""
    audio, _ = scene
    context, block = audio[:10 * RATE], audio[10 * RATE:]
    probs, hop = turn_speech(client(), block, context)
    whole = client().infer(TURN_MODEL, {"audio": audio})["probs"]
    assert hop == pytest.approx(0.01) and len(probs) == -(-len(block) // 160)
    np.testing.assert_allclose(probs, whole[len(whole) - len(probs):], atol=1e-6)


def test_without_the_model_the_pipeline_cuts_turns_with_its_vad(tmp_path):
    """A deployment that does not serve the segmentation model still diarizes (turns from the VAD
    of the denoised audio, as before the model came)."""
    import json

    from services.inference.models import _MODELS
    from services.inference.pipeline import JobContext, parse_params
    from services.inference.pipelines.diarize import DiarizePipeline
    from tests.inference.audiogen import conversation

    conv = conversation([VOICES[0], VOICES[1]], 4, seed=2)
    path = conv.write(tmp_path / "conv.wav")
    models = InProcessModelClient({k: v for k, v in _MODELS.items() if k != TURN_MODEL})
    ctx = JobContext("job-1", "acct-1", "diarize", parse_params("diarize", {"file_id": "f1"}), {"file": path},
                     tmp_path / "out")
    (tmp_path / "out").mkdir()
    files = {r.name: r.path for r in DiarizePipeline(models).run(ctx)}
    result = json.loads(files["diarization.json"].read_text())
    assert result["num_speakers"] == 2
    covered = sum(t["end"] - t["start"] for t in result["turns"])
    assert covered > 0.8 * sum(t.end - t.start for t in conv.turns)
