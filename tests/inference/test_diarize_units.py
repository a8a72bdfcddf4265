"""Diarize building blocks: VAD rules, SRT, hallucination guard, cues, clustering, pitch, metrics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from services.inference.diarization.clustering import SpeakerTimeline, cluster, speaker_windows
from services.inference.diarization.cues import CueStyle, assign_words, build_cues
from services.inference.diarization.gender import classify, pitch_track
from services.inference.diarization.guard import hallucination_reason, hallucination_reasons
from services.inference.diarization.srt import Cue, SrtError, format_srt, parse_srt
from services.inference.diarization.vad import (
    VadOptions,
    decode_spans,
    spans,
    speech_clips,
    speech_regions,
    unheard,
)
from tests.inference.audiogen import VOICES, speak
from tools.metrics import der, wer

HOP = 0.01


def probs(*runs: tuple[float, float]) -> np.ndarray:
    """Frame probabilities from (seconds, probability) runs."""
    return np.concatenate([np.full(round(s / HOP), p, np.float32) for s, p in runs])


# -- VAD parameters ---------------------------------------------------------------------------

def test_vad_threshold_is_inclusive_and_exact():
    p = probs((1.0, 0.2), (1.0, 0.5), (1.0, 0.49), (1.0, 0.9))
    assert speech_regions(p, HOP, VadOptions(0.5, 0.0, 0.0)) == [(1.0, 2.0), (3.0, 4.0)]
    assert speech_regions(p, HOP, VadOptions(0.49, 0.0, 0.0)) == [(1.0, 4.0)]
    assert speech_regions(p, HOP, VadOptions(0.0, 0.0, 0.0)) == [(0.0, 4.0)]
    assert speech_regions(p, HOP, VadOptions(0.95, 0.0, 0.0)) == []


def test_vad_min_silence_fills_only_shorter_gaps():
    p = probs((1.0, 0.9), (0.3, 0.0), (1.0, 0.9), (0.5, 0.0), (1.0, 0.9))
    assert speech_regions(p, HOP, VadOptions(0.5, 0.0, 0.3)) == [(0.0, 1.0), (1.3, 2.3), (2.8, 3.8)]  # 0.3 s kept
    assert speech_regions(p, HOP, VadOptions(0.5, 0.0, 0.31)) == [(0.0, 2.3), (2.8, 3.8)]
    assert speech_regions(p, HOP, VadOptions(0.5, 0.0, 0.51)) == [(0.0, 3.8)]
    assert speech_regions(p, HOP, VadOptions(0.5, 0.0, 0.0)) == [(0.0, 1.0), (1.3, 2.3), (2.8, 3.8)]


def test_vad_min_speech_drops_only_shorter_runs():
    p = probs((0.5, 0.0), (0.2, 0.9), (0.5, 0.0), (0.6, 0.9), (0.5, 0.0))
    assert speech_regions(p, HOP, VadOptions(0.5, 0.2, 0.0)) == [(0.5, 0.7), (1.2, 1.8)]
    assert speech_regions(p, HOP, VadOptions(0.5, 0.21, 0.0)) == [(1.2, 1.8)]
    assert speech_regions(p, HOP, VadOptions(0.5, 0.61, 0.0)) == []
    # Silence filling comes first: two short bursts 0.1 s apart make one run long enough to keep.
    q = probs((0.15, 0.9), (0.1, 0.0), (0.15, 0.9))
    assert speech_regions(q, HOP, VadOptions(0.5, 0.3, 0.2)) == [(0.0, 0.4)]


def test_speech_clips_pad_merge_and_spans_bound_the_audio():
    clips = speech_clips([(0.0, 5.0), (5.5, 10.0), (12.5, 95.0), (99.0, 99.5)], duration=99.7)
    # padded by 0.4 s (clamped to the file), merged across gaps under 1.5 s, never cut
    assert clips == [(0.0, 10.4), (12.1, 95.4), (98.6, 99.7)]
    groups = spans(clips, max_span=40.0)
    assert groups[0][0] == (0.0, 10.4)
    assert all(g[-1][1] - g[0][0] <= 40.0 + 1e-9 for g in groups)
    # the long clip is cut into pieces that tile it exactly
    pieces = [c for g in groups for c in g if 12.1 <= c[0] < 95.4]
    assert pieces[0][0] == 12.1 and pieces[-1][1] == 95.4
    assert all(a[1] == pytest.approx(b[0]) for a, b in itertools.pairwise(pieces))


def test_whisper_decodes_the_file_as_whisper_alone_does_in_bounded_spans():
    # a short file is one span from its first sample to its last, whatever the clips
    assert decode_spans([(0.1, 5.4), (7.2, 19.0)], duration=20.0, max_span=600.0) == [(0.0, 20.0)]
    # speech only late in the file: the span starts 30 s before it, and ends 30 s after the last clip
    assert decode_spans([(100.0, 110.0)], duration=400.0, max_span=600.0) == [(70.0, 140.0)]
    # long files: spans tile the file from the first on, cut between clips, each bounded
    clips = speech_clips([(float(s), s + 20.0) for s in range(0, 1800, 25)], duration=1800.0)
    out = decode_spans(clips, duration=1800.0, max_span=600.0)
    assert out[0][0] == 0.0 and out[-1][1] == 1800.0 and len(out) >= 3
    assert all(a[1] == b[0] for a, b in itertools.pairwise(out))
    assert all(e - s <= 600.0 + 30.0 for s, e in out)
    assert all(not (cs < e < ce) for _, e in out[:-1] for cs, ce in clips)   # never inside a clip


def test_unheard_finds_the_speech_that_no_word_covers():
    # words cover 0.3 s either side; the 1.8-5.7 s hole and the region's unheard end are returned
    assert unheard([(0.0, 10.0)], [(0.5, 1.0), (1.2, 1.5), (6.0, 6.3)]) == [(1.8, 5.7), (6.6, 10.0)]
    # a hole under a second is a pause, not a skip; a region without words is unheard whole
    assert unheard([(0.0, 3.0)], [(0.5, 1.0), (1.9, 2.5)]) == []
    assert unheard([(4.0, 6.0)], []) == [(4.0, 6.0)]
    # a word "aligned" over 8 s covers at most its first second: the decoder jumped there
    assert unheard([(0.0, 3.0), (5.0, 9.0)], [(0.2, 0.5), (0.6, 8.5)]) == [(1.9, 3.0), (5.0, 9.0)]
    # what the hallucination guard dropped was heard (music decoded to "2.0%"): not decoded again
    assert unheard([(0.0, 10.0)], [(0.5, 1.0)], rejected=[(2.0, 8.0)]) == [(8.0, 10.0)]


# -- SRT --------------------------------------------------------------------------------------

def test_srt_roundtrip_and_validation():
    cues = [Cue(0.5, 2.25, "SPEAKER_1: Hello there."), Cue(3661.0, 3662.5, "two\nlines")]
    text = format_srt(cues)
    assert "01:01:01,000 --> 01:01:02,500" in text
    back = parse_srt(text)
    assert [(c.start, c.end, c.text) for c in back] == [(c.start, c.end, c.text) for c in cues]
    assert parse_srt("\ufeff1\r\n00:00:01.5 --> 00:00:02,000\r\nhi\r\n")[0].start == 1.5
    for bad, needle in [("", "no cue"), ("x\n00:00:01,000 --> 00:00:02,000\nhi\n", "cue number"),
                        ("1\n00:00:01,000 -> 00:00:02,000\nhi\n", "HH:MM:SS"),
                        ("1\n00:00:03,000 --> 00:00:02,000\nhi\n", "before it starts"),
                        ("1\n00:00:01,000 --> 00:00:02,000\n\n", "no text"),
                        ("1\n00:00:61,000 --> 00:01:02,000\nhi\n", "below 60")]:
        with pytest.raises(SrtError, match=needle):
            parse_srt(bad)


# -- hallucination guard ----------------------------------------------------------------------

def seg(text, logprob=-0.2, no_speech=0.05, ratio=1.0, prob=0.9):
    return {"text": text, "avg_logprob": logprob, "no_speech_prob": no_speech, "compression_ratio": ratio,
            "words": [{"probability": prob}] * max(1, len(text.split()))}


def test_guard_drops_hallucinations_and_keeps_speech():
    assert hallucination_reason(seg("The library closes early on Sundays.")) is None
    assert hallucination_reason(seg("Thank you.")) is None                      # confident: kept
    assert hallucination_reason(seg("Thank you.", logprob=-0.8)) == "stock_phrase"
    assert hallucination_reason(seg("♪ ♪ ♪")) == "no_words"
    assert hallucination_reason(seg("I'm going to go to the store. " * 6)) == "repetition"
    assert hallucination_reason(seg("yeah yeah yeah yeah")) == "repetition"
    assert hallucination_reason(seg("Some words", ratio=2.6, logprob=-0.7)) == "repetition"  # its window loops
    assert hallucination_reason(seg("Press one for sales.", ratio=2.6)) is None   # a menu said again, heard
    menu = ("нажмите 1 для записи вашего сообщения при статусе недоступен, нажмите 2 для записи вашего "
            "сообщения при статусе занято, нажмите 3 для записи вашего имени, нажмите 4 для записи "
            "временного сообщения")     # zlib ratio 2.6 (its UTF-8)
    assert hallucination_reason(seg(menu, no_speech=0.42)) is None
    assert hallucination_reason(seg(menu, logprob=-0.7)) == "repetition"
    # The same menu decoded with confidence in a window whose start sounded like silence (ru eval
    # recording, avg_logprob -0.22, no_speech_prob 0.74, window ratio 2.75): Whisper keeps it.
    assert hallucination_reason(seg(menu, logprob=-0.22, no_speech=0.74, ratio=2.75)) is None
    assert hallucination_reason(seg("Some words", logprob=-1.2, no_speech=0.7)) == "no_speech"
    assert hallucination_reason(seg("Some words", logprob=-1.6)) == "low_confidence"
    assert hallucination_reason(seg("Some words", prob=0.1)) == "low_confidence"


def test_guard_drops_an_unsure_loop_across_segments_and_keeps_a_sure_one():
    music = [seg("1.0%", logprob=-0.5, no_speech=0.52)] + [seg("2.0%", logprob=-0.46, no_speech=0.52)] * 3
    assert hallucination_reasons(music) == [None, "repetition", "repetition", "repetition"]
    alternating = [seg("Press one.", no_speech=0.4), seg("Press two.", no_speech=0.4)] * 3
    assert hallucination_reasons(alternating) == ["repetition"] * 6
    said = [seg("Everyone is busy.")] * 3 + [seg("Please hold.")]     # a voice that repeats itself
    assert hallucination_reasons(said) == [None] * 4
    assert hallucination_reasons([seg("Hello there.", no_speech=0.5)] * 2) == [None, None]  # twice is no loop


def test_dropped_segments_carry_the_confidence_they_were_judged_on():
    from services.inference.pipelines.diarize import DiarizePipeline

    decoded = [dict(seg("The library closes early.", no_speech=0.61111), start=0.0, end=2.0),
               dict(seg("Thank you.", logprob=-0.81234), start=2.0, end=3.0)]
    kept, dropped = [], []
    DiarizePipeline._guard(decoded, kept, dropped)
    assert [x["text"] for x in kept] == ["The library closes early."]
    assert dropped == [{"start": 2.0, "end": 3.0, "text": "Thank you.", "reason": "stock_phrase",
                        "avg_logprob": -0.812, "no_speech_prob": 0.05, "compression_ratio": 1.0}]


def test_a_segment_with_no_word_in_the_speech_is_dropped_as_outside_speech():
    from services.inference.pipelines.diarize import DiarizePipeline

    def timed(text, start, end):
        words = [{"start": start + k * 0.3, "end": start + k * 0.3 + 0.25, "word": w, "probability": 0.9}
                 for k, w in enumerate(text.split())]
        return dict(seg(text), start=start, end=end, words=words)

    decoded = [timed("The library closes early.", 1.0, 2.5),     # in the speech
               timed("Subtitles by the community.", 9.0, 10.5),  # music between turns: invented
               timed("See you on Sunday.", 4.8, 6.0)]            # its first word ends the speech
    kept, dropped = [], []
    DiarizePipeline._guard(decoded, kept, dropped, [(0.6, 3.0), (4.5, 5.0), (12.0, 15.0)])
    assert [x["text"] for x in kept] == ["The library closes early.", "See you on Sunday."]
    assert [(x["text"], x["reason"]) for x in dropped] == [("Subtitles by the community.", "outside_speech")]


# -- cues -------------------------------------------------------------------------------------

def words_of(text, start, speaker_time_edges=None, step=0.3):
    out = []
    for i, w in enumerate(text.split()):
        out.append({"start": start + i * step, "end": start + i * step + 0.25, "word": " " + w, "probability": 0.9})
    return out


def test_cue_never_spans_a_speaker_change_and_sentences_split():
    # One Whisper segment whose words straddle a speaker change at t = 1.5 s.
    words = words_of("Hello there my friend. How are you doing today?", 0.0)
    windows = np.array([[0.0, 1.5], [1.5, 3.0]], np.float32)
    timeline = SpeakerTimeline(windows, np.array([7, 3]))
    assign_words(words, timeline)
    names = {7: "SPEAKER_1", 3: "SPEAKER_2"}
    cues = build_cues(words, names, CueStyle())
    assert [c.text.split(":")[0] for c in cues] == ["SPEAKER_1", "SPEAKER_2"]
    assert cues[0].end <= cues[1].start
    words = words_of("One two. Three four. Five six.", 0.0, step=0.3)
    for w in words:
        w["speaker"] = 0
    sentences = build_cues(words, {0: "SPEAKER_1"}, CueStyle(sentences=True))
    assert [c.text for c in sentences] == ["SPEAKER_1: One two.", "SPEAKER_1: Three four.", "SPEAKER_1: Five six."]


def test_long_cues_are_limited():
    words = words_of(" ".join(["word"] * 60), 0.0, step=0.2)
    for w in words:
        w["speaker"] = 0
    cues = build_cues(words, {0: "SPEAKER_1"}, CueStyle())
    assert len(cues) > 1
    for c in cues:
        assert c.end - c.start <= 7.0
        assert all(len(line) <= 60 for line in c.text.split("\n"))
        assert c.text.count("\n") <= 1


# -- clustering -------------------------------------------------------------------------------

def _voices(n: int, per: int, scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n, 192))
    emb = np.concatenate([c + rng.normal(scale=scale, size=(per, 192)) for c in centers])
    return emb / np.linalg.norm(emb, axis=1, keepdims=True), np.repeat(np.arange(n), per)


def test_clustering_count_and_forced_count():
    emb, truth = _voices(3, 12, 0.6)
    labels = cluster(emb)
    assert len(set(labels)) == 3
    assert all(len(set(labels[truth == k])) == 1 for k in range(3))
    assert len(set(cluster(emb, 2))) == 2
    assert len(set(cluster(emb, 5))) == 5
    assert len(set(cluster(emb[:12]))) == 1


def test_clustering_count_survives_lower_similarity():
    """Noise lowers every similarity (here: same-voice cosine about 0.25, other voices about
    0); the count comes from the neighbour graph, not from a fixed similarity cut."""
    emb, truth = _voices(4, 20, 1.7, seed=3)
    same = (emb @ emb.T)[truth[:, None] == truth[None, :]].mean()
    assert same < 0.35
    labels = cluster(emb)
    assert len(set(labels)) == 4
    assert all(len(set(labels[truth == k])) == 1 for k in range(4))


def test_link_count_is_nme_sc_choice():
    """The graph's link count is the one among MIN_KEEP..MIN_KEEP+4 with the smallest ratio of
    links to normalised maximum eigengap; short inputs link to a third of their windows."""
    from services.inference.diarization import clustering as cl

    emb, _ = _voices(4, 15, 1.4, seed=5)
    sim, kmax = emb @ emb.T, 20

    def ratio(keep):
        vals = np.linalg.eigvalsh(cl._pruned_laplacian(sim, keep))
        return keep / (np.diff(vals[: kmax + 1]).max() / vals[-1])

    candidates = range(cl.MIN_KEEP, cl.MIN_KEEP + cl.KEEP_CHOICES)
    ratios = [ratio(k) for k in candidates]
    keep, vals, _ = cl.nme_graph(sim, kmax)
    assert keep == candidates[int(np.argmin(ratios))]
    np.testing.assert_allclose(vals, np.linalg.eigvalsh(cl._pruned_laplacian(sim, keep)), atol=1e-8)
    assert max(ratios) > min(ratios) * 1.05          # the choice is not a tie
    assert cl.nme_graph(emb[:12] @ emb[:12].T, 4)[0] == 4     # 12 windows: 4 links, no choice


def test_weighted_links_weigh_their_cosine():
    """``WEIGHTED`` is off (links of weight 1) but bench.diarize_calibrate still sweeps it: the
    same graph's links, switched on, weigh their cosine (clipped at 0), and the graph is a
    Laplacian (rows sum to 0)."""
    from unittest import mock

    from services.inference.diarization import clustering as cl

    emb, _ = _voices(3, 8, 0.9, seed=3)
    sim = emb @ emb.T
    assert not cl.WEIGHTED
    plain = cl._pruned_laplacian(sim, 4)
    with mock.patch.object(cl, "WEIGHTED", True):
        weighted = cl._pruned_laplacian(sim, 4)
    off = ~np.eye(len(emb), dtype=bool)
    linked = off & (plain != 0)
    assert linked.any() and (weighted[off & ~linked] == 0).all()            # the same links
    np.testing.assert_allclose(weighted[linked], plain[linked] * np.clip(sim[linked], 0, None))
    np.testing.assert_allclose(weighted.sum(1), 0, atol=1e-9)


def test_silhouette_raises_a_count_the_eigengap_gives_too_low():
    """Two voices that speak briefly (5 windows each, fewer than the graph's 6+ links) share
    their neighbourhoods with the others, and the eigengap reads 3 voices for 5; the labels with
    the best cosine silhouette on the embeddings (counts 3..5) are the true ones."""
    from unittest import mock

    from services.inference.diarization import clustering as cl

    rng = np.random.default_rng(2)
    sizes = (24, 24, 24, 5, 5)
    emb = np.concatenate([rng.normal(size=192) + rng.normal(scale=0.7, size=(k, 192)) for k in sizes])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    with mock.patch.object(cl, "SILHOUETTE_UP", 0):
        assert len(set(cluster(emb))) == 3                   # the eigengap alone
    labels = cluster(emb)
    assert len(set(labels)) == 5
    assert all(len(set(labels[truth == k])) == 1 for k in range(5))
    assert len(set(cluster(emb, max_speakers=4))) == 4      # the bounds still hold
    assert len(set(cluster(emb, num_speakers=3))) == 3


def test_clustering_honours_min_and_max_speakers():
    emb, _ = _voices(4, 15, 0.6, seed=1)
    assert len(set(cluster(emb))) == 4
    assert len(set(cluster(emb, max_speakers=3))) == 3
    assert len(set(cluster(emb, min_speakers=5))) == 5
    assert len(set(cluster(emb, min_speakers=2, max_speakers=6))) == 4
    one, _ = _voices(1, 30, 0.6, seed=2)
    assert len(set(cluster(one, min_speakers=2))) == 2


def test_speaker_bounds_are_validated():
    from pydantic import ValidationError

    from services.common.params import DiarizeParams

    ok = DiarizeParams(file_id="f", min_speakers=2, max_speakers=4)
    assert ok.speaker_range() == (2, 4)
    assert DiarizeParams(file_id="f").speaker_range() == (1, 20)
    assert DiarizeParams(file_id="f", min_speakers=3).speaker_range() == (3, 20)
    assert DiarizeParams(file_id="f", num_speakers=3, min_speakers=2, max_speakers=3).speaker_range() == (3, 3)
    for bad in ({"min_speakers": 3, "max_speakers": 2}, {"num_speakers": 5, "max_speakers": 4},
                {"num_speakers": 1, "min_speakers": 2}, {"min_speakers": 0}, {"max_speakers": 21}):
        with pytest.raises(ValidationError):
            DiarizeParams(file_id="f", **bad)


def test_windows_cover_regions():
    w = speaker_windows([(0.0, 0.3), (1.0, 2.0), (3.0, 6.0)])
    assert w[0].tolist() == [1.0, 2.0]                      # short region: one window, own length
    assert w[-1][1] == pytest.approx(6.0)
    assert all(e - s <= 1.5 + 1e-6 for s, e in w)


# -- gender, metrics --------------------------------------------------------------------------

@pytest.mark.parametrize("voice", [VOICES[0], VOICES[1], VOICES[2], VOICES[3]], ids=lambda v: v.name)
def test_pitch_gender_of_generated_voices(voice):
    audio = speak("The weather was cold and windy all day yesterday.", voice)
    g = classify(pitch_track(audio))
    assert g.gender == voice.gender
    assert g.confidence >= 0.75


def test_pitch_track_finds_a_tone():
    t = np.arange(16000) / 16000
    f0 = pitch_track((0.3 * np.sin(2 * np.pi * 140 * t)).astype(np.float32))
    assert np.median(f0) == pytest.approx(140, rel=0.03)
    assert classify(np.zeros(10, np.float32)).gender == "unknown"


def test_der_and_wer():
    ref = [(0.0, 2.0, "a"), (2.5, 4.0, "b")]
    assert der(ref, [(0.0, 2.0, "x"), (2.5, 4.0, "y")])["der"] == 0.0
    assert der(ref, [(0.0, 4.0, "x")])["der"] == pytest.approx((0.5 + 1.5) / 3.5, abs=0.01)
    assert der(ref, [])["miss"] == pytest.approx(1.0)
    assert wer("Dinner is at 20 minutes past.", "dinner is at twenty minutes past") == 0.0
    assert wer("a b c d", "a x c") == pytest.approx(0.5)
    assert wer("A lighter colour.", "a lighter color") == 0.0
