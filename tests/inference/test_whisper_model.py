"""The Whisper model: its sampled retries give the same words on every call, its words are
Whisper alone's, and no stretch of audio is written twice where the decoder's times slip."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from services.inference.diarization.guard import hallucination_reason
from services.inference.model_client import parse_json_output
from services.inference.models.whisper import Whisper, settle_windows
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


def _seg(text: str, *spans: tuple[float, float]) -> dict:
    words = [{"start": s, "end": e, "word": f" {w}", "probability": 0.9}
             for w, (s, e) in zip(text.split(), spans, strict=True)]
    return {"start": spans[0][0], "end": spans[-1][1], "text": text, "words": words}


def test_a_last_word_run_a_little_past_the_next_window_is_clipped_to_it():
    # "your Press password. 4": the alignment ran the last word 0.4 s into the next window
    first = [_seg("your password 4", (26.0, 26.4), (26.4, 27.0), (29.8, 30.4))]
    second = [_seg("press 5", (30.5, 30.9), (31.0, 31.3))]
    out = settle_windows([first, second], [0.0, 30.0])
    assert [w["end"] for w in out[0]["words"]] == [26.4, 27.0, 30.0]
    assert out[1] == second[0] and "reheard" not in out[1]
    # one last word stretched over a pause far into the next window: still clipped, nothing dropped
    first = [_seg("your password", (26.0, 26.4), (26.4, 33.0))]
    out = settle_windows([first, second], [0.0, 30.0])
    assert out[0]["words"][-1]["end"] == 30.0 and out[1] == second[0]


def test_words_a_slipped_decoder_wrote_are_not_written_again_by_the_next_window():
    # A real telephone conversation: the decoder stamped 30 s of words 0-22 s, so its next window
    # began at 22 s and decoded the last sentence a second time; the alignment put the first
    # window's words where they are said, up to 29.8 s.
    first = [_seg("Well there's", (21.8, 22.1), (22.3, 22.7)),
             _seg("Oh I don't hear", (28.0, 28.2), (28.4, 28.5), (28.5, 28.7), (28.7, 29.8))]
    second = [_seg("Oh I don't hear", (27.9, 28.2), (28.4, 28.5), (28.5, 28.7), (28.7, 29.8)),
              _seg("now bye", (29.6, 29.9), (30.1, 30.4))]
    out = settle_windows([first, second], [0.0, 22.0])
    assert out[:2] == first                                     # kept where the alignment put them
    assert out[2]["reheard"] and out[2]["words"] == []          # dropped as a second decode
    assert out[3]["text"] == "bye" and [w["word"] for w in out[3]["words"]] == [" bye"]
    assert hallucination_reason(out[2]) == "reheard"
