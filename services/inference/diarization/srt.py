"""SRT parsing (strict, with line-numbered errors) and writing."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_TIME = re.compile(r"^\s*(\d{1,3}):(\d{2}):(\d{2})[,.](\d{1,3})\s*-->\s*(\d{1,3}):(\d{2}):(\d{2})[,.](\d{1,3})"
                   r"(?:\s+.*)?$")
MAX_BYTES = 20 << 20


class SrtError(ValueError):
    """The SRT file is malformed; the message names the line."""


@dataclass
class Cue:
    start: float
    end: float
    text: str


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    if int(m) > 59 or int(s) > 59:
        raise ValueError
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def parse_srt(text: str) -> list[Cue]:
    """Parse SRT text. Raises ``SrtError`` on a bad index, time line, empty text or no cue."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    cues: list[Cue] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        line_no = i + 1
        if not lines[i].strip().isdigit():
            raise SrtError(f"line {line_no}: expected a cue number, got {lines[i].strip()[:40]!r}")
        i += 1
        match = _TIME.match(lines[i]) if i < len(lines) else None
        if match is None:
            raise SrtError(f"line {i + 1}: expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm'")
        try:
            start, end = _seconds(*match.groups()[:4]), _seconds(*match.groups()[4:])
        except ValueError:
            raise SrtError(f"line {i + 1}: minutes and seconds must be below 60") from None
        if end <= start:
            raise SrtError(f"line {i + 1}: cue ends ({end:.3f} s) before it starts ({start:.3f} s)")
        i += 1
        body = []
        while i < len(lines) and lines[i].strip():
            body.append(lines[i].strip())
            i += 1
        if not body:
            raise SrtError(f"line {line_no}: cue has no text")
        cues.append(Cue(start, end, "\n".join(body)))
    if not cues:
        raise SrtError("the file holds no cue")
    return cues


def read_srt(path: Path) -> list[Cue]:
    if path.stat().st_size > MAX_BYTES:
        raise SrtError(f"the SRT file is larger than {MAX_BYTES >> 20} MiB")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SrtError(f"the SRT file is not UTF-8 text (byte {exc.start})") from None
    return parse_srt(text)


def timestamp(t: float) -> str:
    ms = round(max(0.0, t) * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def format_srt(cues: Iterable[Cue]) -> str:
    blocks = [f"{i}\n{timestamp(c.start)} --> {timestamp(c.end)}\n{c.text}\n" for i, c in enumerate(cues, 1)]
    return "\n".join(blocks)
