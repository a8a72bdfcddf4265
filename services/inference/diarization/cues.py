"""Words with speakers -> SRT cues that never span a speaker change.

Speakers are assigned per word first (``assign_words``), then cues are cut from the word
stream (``build_cues``): a cue ends at every speaker change, at a pause, at the length and duration
limits, and at a sentence end once it holds half its maximum length; ``sentence_split`` ends
one at every sentence end. This is the order
WhisperX users ask for: a cue built before speaker assignment can hold two voices.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from services.inference.diarization.clustering import SpeakerTimeline
from services.inference.diarization.srt import Cue

SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
LINE_CHARS = 42          # Netflix / BBC subtitle line length
MAX_CHARS = 2 * LINE_CHARS
MAX_DURATION = 7.0       # seconds on screen
PAUSE = 1.0              # a silence this long starts a new cue


@dataclass(frozen=True)
class CueStyle:
    sentences: bool = False
    max_chars: int = MAX_CHARS
    max_duration: float = MAX_DURATION
    pause: float = PAUSE


def assign_words(words: list[dict[str, Any]], timeline: SpeakerTimeline) -> None:
    """Set ``word["speaker"]`` (cluster label) in place; lone flips between agreeing neighbours
    are smoothed (a short word at a window edge inherits its neighbours' voice)."""
    last = None
    for w in words:
        spk = timeline.speaker_at(w["start"], w["end"])
        w["speaker"] = spk if spk is not None else last
        last = w["speaker"]
    if words and words[0]["speaker"] is None:
        first = next((w["speaker"] for w in words if w["speaker"] is not None), 0)
        for w in words:
            if w["speaker"] is not None:
                break
            w["speaker"] = first
    for i in range(1, len(words) - 1):
        prev, cur, nxt = words[i - 1], words[i], words[i + 1]
        if (prev["speaker"] == nxt["speaker"] != cur["speaker"] and cur["end"] - cur["start"] < 0.6
                and cur["start"] - prev["end"] < 0.3 and nxt["start"] - cur["end"] < 0.3):
            cur["speaker"] = prev["speaker"]


def _join(words: list[dict[str, Any]]) -> str:
    return "".join(w["word"] for w in words).strip()


def wrap(text: str, width: int = LINE_CHARS) -> str:
    """Balanced lines (two for a full cue) when the text is longer than one line."""
    if len(text) <= width:
        return text
    half = max(width, (len(text) + 1) // 2 + 2)
    return "\n".join(textwrap.wrap(text, half, break_long_words=False))


def group_words(words: list[dict[str, Any]], style: CueStyle) -> list[list[dict[str, Any]]]:
    groups: list[list[dict[str, Any]]] = []
    cur: list[dict[str, Any]] = []
    for w in words:
        if cur:
            text = _join(cur + [w])
            if (w["speaker"] != cur[-1]["speaker"] or w["start"] - cur[-1]["end"] >= style.pause
                    or len(text) > style.max_chars or w["end"] - cur[0]["start"] > style.max_duration
                    or (cur[-1]["word"].strip().endswith(SENTENCE_END)
                        and (style.sentences or len(_join(cur)) >= style.max_chars // 2))):
                groups.append(cur)
                cur = []
        cur.append(w)
    if cur:
        groups.append(cur)
    return groups


def build_cues(words: list[dict[str, Any]], names: dict[int, str], style: CueStyle) -> list[Cue]:
    cues = []
    for group in group_words(words, style):
        text = _join(group)
        if text:
            cues.append(Cue(group[0]["start"], group[-1]["end"], wrap(f"{names[group[0]['speaker']]}: {text}")))
    return cues


def speaker_names(words: list[dict[str, Any]], labels_by_time: list[int]) -> dict[int, str]:
    """SPEAKER_1, SPEAKER_2, ... in order of first appearance (words first, then the rest)."""
    order: list[int] = []
    for spk in [w["speaker"] for w in words] + labels_by_time:
        if spk is not None and spk not in order:
            order.append(spk)
    return {spk: f"SPEAKER_{i}" for i, spk in enumerate(order, 1)}


def split_cue(cue: Cue, timeline: SpeakerTimeline, min_part: float = 0.5) -> list[tuple[Cue, int]]:
    """Label an existing cue; split it where the speaker changes (parts shorter than
    ``min_part`` seconds are merged into their neighbour). Text is split at word boundaries,
    in proportion to each part's duration."""
    points = timeline.change_points(cue.start, cue.end)
    if not points:
        return [(cue, -1)]
    parts: list[list] = []  # [start, end, speaker]
    for k, (t, spk) in enumerate(points):
        end = points[k + 1][0] if k + 1 < len(points) else cue.end
        parts.append([t, end, spk])
    merged: list[list] = []
    for p in parts:
        if merged and (p[2] == merged[-1][2] or p[1] - p[0] < min_part):
            merged[-1][1] = p[1]
        elif merged and merged[-1][1] - merged[-1][0] < min_part:
            merged[-1][1], merged[-1][2] = p[1], p[2]
        else:
            merged.append(list(p))
    words = cue.text.split()
    if len(merged) == 1 or len(words) < len(merged):
        return [(cue, timeline.speaker_at(cue.start, cue.end))]
    total = cue.end - cue.start
    out, taken = [], 0
    for k, (s, e, spk) in enumerate(merged):
        n = len(words) - taken if k == len(merged) - 1 else max(1, round(len(words) * (e - s) / total))
        n = min(n, len(words) - taken - (len(merged) - k - 1))
        out.append((Cue(s, e, " ".join(words[taken:taken + n])), spk))
        taken += n
    return out
