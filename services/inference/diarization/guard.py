"""Whisper hallucination guard: drop segments that are not speech transcribed.

Whisper invents text on silence, music and noise ("Thank you.", "♪", one phrase repeated
until the window ends). A segment is dropped, with its reason kept in the JSON, when:

- it holds no letter or digit (music notes, punctuation),
- it repeats itself: one word or short phrase 4+ times in a row, or its text's zlib
  compression ratio above 3.0; above 2.4 (Whisper's own retry test), or the whole window's
  ratio above 2.4, only where the decoder is unsure of the text (avg_logprob < -0.6; a high
  no_speech_prob alone does not count, as in Whisper's own silence rule, which ignores it when
  the text is likely). Speech reaches 2.4: a recorded menu ("press 1 to record your message..., press 2 to
  record...") or a sentence said three times, and a Cyrillic or Greek text sooner, since zlib
  sees its two-byte UTF-8; Whisper heard those with confidence and keeps its last retry,
- the decoder itself did not believe it: no_speech_prob > 0.6 with avg_logprob < -1.0
  (Whisper's silence rule), or avg_logprob < -1.5, or mean word probability < 0.25,
- it is one of the stock phrases Whisper emits on non-speech *and* the decoder is unsure
  (avg_logprob < -0.6 or no_speech_prob > 0.3),
- it is ``reheard``: Whisper's timestamps slipped behind its words, so a later window decoded
  audio whose words an earlier one had already written (``models/whisper.py``, ``settle_windows``),
- it is part of a loop across segments (one or two segments' words 3+ times in a row, "2.0%
  2.0% 2.0%" on music) *and* the decoder is unsure: a person who repeats a sentence three
  times is heard with confidence (``hallucination_reasons`` sees a decode's segments together).
"""

from __future__ import annotations

import re
import zlib
from typing import Any

STOCK = {
    "thank you", "thanks for watching", "thank you for watching", "please subscribe", "bye",
    "you", "so", "okay", "music", "applause", "subtitles by the amara org community",
}
LOOP_RATIO = 3.0     # zlib ratio of a segment's text that no speech reaches: a loop however sure
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _looped(items: list, times: int, longest: int) -> set[int]:
    """Indices of ``items`` inside a run of one unit of 1..``longest`` items repeated ``times``+
    times in a row."""
    out: set[int] = set()
    for n in range(1, longest + 1):
        for i in range(max(0, len(items) - n * times + 1)):
            unit = items[i:i + n]
            if all(items[i + k * n:i + (k + 1) * n] == unit for k in range(times)):
                out.update(range(i, i + n * times))
    return out


def _repeats(words: list[str], times: int = 4) -> bool:
    return bool(_looped(words, times, 3))


def _unsure(seg: dict[str, Any], no_speech: float = 0.3) -> bool:
    """The decoder doubted the segment: a low mean log probability, or a likely silence at the
    window's start (0.3 for short stock phrases; 0.6, Whisper's own threshold, for long text)."""
    return seg.get("avg_logprob", 0.0) < -0.6 or seg.get("no_speech_prob", 0.0) > no_speech


def silence(seg: dict[str, Any]) -> bool:
    """Whisper's own silence rule: the silence token was likely and the text unlikely."""
    return seg.get("no_speech_prob", 0.0) > 0.6 and seg.get("avg_logprob", 0.0) < -1.0


def hallucination_reason(seg: dict[str, Any]) -> str | None:
    if seg.get("reheard"):
        return "reheard"
    text = seg.get("text", "")
    tokens = [t.lower() for t in _WORD.findall(text)]
    if not tokens:
        return "no_words"
    raw = text.encode("utf-8")
    ratio = len(raw) / max(1, len(zlib.compress(raw)))
    window_ratio = seg.get("compression_ratio", 0.0)
    doubted = seg.get("avg_logprob", 0.0) < -0.6  # as Whisper: a likely silence means nothing when it is sure
    if _repeats(tokens) or ratio > LOOP_RATIO or (max(ratio, window_ratio) > 2.4 and doubted):
        return "repetition"
    if silence(seg):
        return "no_speech"
    if seg.get("avg_logprob", 0.0) < -1.5:
        return "low_confidence"
    probs = [w["probability"] for w in seg.get("words", [])]
    if probs and sum(probs) / len(probs) < 0.25:
        return "low_confidence"
    if " ".join(tokens) in STOCK and _unsure(seg):
        return "stock_phrase"
    return None


def hallucination_reasons(segments: list[dict[str, Any]]) -> list[str | None]:
    """``hallucination_reason`` of each segment of one decode, and the loops across them."""
    reasons = [hallucination_reason(seg) for seg in segments]
    keys = [" ".join(_WORD.findall(seg.get("text", "").lower())) for seg in segments]
    for i in _looped(keys, 3, 2):
        if reasons[i] is None and _unsure(segments[i]):  # None: it has words
            reasons[i] = "repetition"
    return reasons
