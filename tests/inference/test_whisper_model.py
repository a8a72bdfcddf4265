"""The Whisper model: its sampled retries give the same words on every call, and its words are
Whisper alone's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from services.inference.model_client import parse_json_output
from services.inference.models.whisper import Whisper
from tests.inference.audiogen import VOICES, conversation, noise_music


@pytest.fixture(scope="module")
def whisper() -> Whisper:
    model = Whisper()
    model.load()
    return model


def _texts(model: Whisper, audio: np.ndarray) -> list[str]:
    clips = np.array([[0.0, len(audio) / 16000]], np.float32)
    out = parse_json_output(model.predict({"audio": audio, "clips": clips}, {"language": "auto"})["result"])
    return [s["text"] for s in out["segments"]]


def test_sampled_retries_are_the_same_on_every_call(whisper):
    # Synthetic music makes beam search unsure, so Whisper retries by sampling: without a fresh
    # random state per call three decodes of this music gave three texts ("0x2", "◕", "H
    # consider, Mutter, ...). The second decode comes after the first's sampling moved the state,
    # and after a call that does not sample.
    music = noise_music(10.0, seed=1).astype(np.float32)
    first = _texts(whisper, music)
    assert whisper._model.model.sampled, "this audio no longer makes Whisper retry: pick another"
    _texts(whisper, np.zeros(16000, np.float32))
    assert _texts(whisper, music) == first


def test_words_are_the_words_whisper_alone_writes(whisper):
    # Word times asked for during the decode move each next 30 s window's start to the last word's
    # end, so the decode drifts from Whisper alone's: on this 28 s conversation the words differed.
    # Aligned after the decode, they are Whisper alone's words, with times that run forward.
    rng = np.random.default_rng(1052)
    voices = [VOICES[i] for i in rng.permutation(len(VOICES))[:3]]
    audio = conversation(voices, 9, seed=1052).audio.astype(np.float32)
    clips = np.array([[0.0, len(audio) / 16000]], np.float32)
    out = parse_json_output(whisper.predict({"audio": audio, "clips": clips}, {"language": "auto"})["result"])
    words = [w for s in out["segments"] for w in s["words"]]
    alone, _ = whisper.seeded().transcribe(audio, beam_size=5)
    assert " ".join(w["word"].strip() for w in words).split() == " ".join(s.text for s in alone).split()
    assert all(a["start"] <= b["start"] and a["start"] <= a["end"] for a, b in itertools.pairwise(words))
    assert all(s["start"] <= s["words"][0]["start"] + 0.5 for s in out["segments"] if s["words"])
