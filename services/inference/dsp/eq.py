"""EQ presets of the enhance job: one table, built as pedalboard filter chains.

Each preset is a tuple of ``Band``s applied in order. ``highpass`` is two cascaded first-order
sections (12 dB/octave, -6 dB at the cutoff); ``low_shelf``/``high_shelf``/``peak`` are RBJ
biquads (gain in dB, Q); ``gain`` is a flat level change (used for headroom). Frequencies
above 45% of the sample rate are pulled down to it so low-rate inputs (8 kHz) stay stable.

| preset     | band        | Hz    | dB   | Q    | why                                      |
|------------|-------------|-------|------|------|------------------------------------------|
| balanced   | highpass    | 50    |      |      | rumble, handling noise, DC               |
| balanced   | peak        | 250   | -1.0 | 0.8  | a touch less boxiness                    |
| balanced   | high_shelf  | 8000  | +1.0 | 0.7  | a touch of air                           |
| vocal      | highpass    | 100   |      |      | everything below the voice               |
| vocal      | peak        | 300   | -4.0 | 1.0  | mud (200-400 Hz)                         |
| vocal      | peak        | 3200  | +4.0 | 0.9  | presence / intelligibility (2-5 kHz)     |
| vocal      | high_shelf  | 10000 | +1.5 | 0.7  | air                                      |
| bass_boost | highpass    | 25    |      |      | sub-sonic energy that only eats headroom |
| bass_boost | low_shelf   | 150   | +6.0 | 0.7  | the lift                                 |
| bass_boost | gain        |       | -3.0 |      | headroom for the lift                    |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pedalboard

BandKind = Literal["highpass", "low_shelf", "high_shelf", "peak", "gain"]


@dataclass(frozen=True)
class Band:
    kind: BandKind
    hz: float = 0.0
    gain_db: float = 0.0
    q: float = 0.7071


PRESETS: dict[str, tuple[Band, ...]] = {
    "balanced": (
        Band("highpass", 50),
        Band("peak", 250, -1.0, 0.8),
        Band("high_shelf", 8000, +1.0, 0.7),
    ),
    "vocal": (
        Band("highpass", 100),
        Band("peak", 300, -4.0, 1.0),
        Band("peak", 3200, +4.0, 0.9),
        Band("high_shelf", 10000, +1.5, 0.7),
    ),
    "bass_boost": (
        Band("highpass", 25),
        Band("low_shelf", 150, +6.0, 0.7),
        Band("gain", gain_db=-3.0),
    ),
}


def _plugins(band: Band, rate: int) -> list[pedalboard.Plugin]:
    hz = min(band.hz, 0.45 * rate)
    if band.kind == "highpass":
        return [pedalboard.HighpassFilter(hz), pedalboard.HighpassFilter(hz)]
    if band.kind == "low_shelf":
        return [pedalboard.LowShelfFilter(hz, band.gain_db, band.q)]
    if band.kind == "high_shelf":
        if band.hz > 0.45 * rate:  # the shelf would sit at Nyquist: nothing to lift
            return []
        return [pedalboard.HighShelfFilter(hz, band.gain_db, band.q)]
    if band.kind == "peak":
        if band.hz > 0.45 * rate:
            return []
        return [pedalboard.PeakFilter(hz, band.gain_db, band.q)]
    if band.kind == "gain":
        return [pedalboard.Gain(band.gain_db)]
    raise ValueError(f"unknown band kind {band.kind!r}")


def build_eq(preset: str, rate: int) -> pedalboard.Pedalboard:
    """The preset's chain. Stream it with ``board(block, rate, reset=False)``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown EQ preset {preset!r}")
    return pedalboard.Pedalboard([p for band in PRESETS[preset] for p in _plugins(band, rate)])


def describe(preset: str) -> list[dict[str, float | str]]:
    """The preset as JSON-ready rows (for the job report)."""
    rows = []
    for b in PRESETS[preset]:
        row: dict[str, float | str] = {"kind": b.kind}
        if b.kind != "gain":
            row["hz"] = b.hz
        if b.kind != "highpass":
            row["gain_db"] = b.gain_db
        if b.kind in ("low_shelf", "high_shelf", "peak"):
            row["q"] = b.q
        rows.append(row)
    return rows
