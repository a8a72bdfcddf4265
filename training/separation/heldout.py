"""Held-out test mixtures for the tests and the benchmark (never used in training).

Speech from espeak-ng voices not used in training (``ESPEAK_TEST_VOICES``), music from MIDI
generated with seeds outside the training range rendered by fluidsynth at the asked rate,
effects from held-out Debian sound files and from generators seeded outside training.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.common.audio import read_audio, resample
from tools.metrics import si_sdr  # noqa: F401 - evaluate.py and the tests call heldout.si_sdr
from training.separation import data

HELDOUT_SEED = 987_654


def speech(text: str, voice: str = "en-gb-x-rp", rate: int = 48000, speed: int = 150) -> np.ndarray:
    """espeak-ng speech, mono float32 at ``rate``, peak 0.5."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text], check=True,
                       capture_output=True, timeout=60)
        audio, _ = read_audio(out, rate)
    return data._peak_norm(audio.mean(axis=0))


def music(seed: int, seconds: float, rate: int = 48000) -> np.ndarray:
    """A generated piece (seed offset from training), rendered by fluidsynth, mono at ``rate``."""
    rng = random.Random(HELDOUT_SEED + seed)
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "m.mid"
        x = None
        for attempt in range(4):
            data._write_generated_midi(mid, random.Random(HELDOUT_SEED * 7 + seed * 31 + attempt), seconds + 4)
            x = data.render_midi(mid, data.SOUNDFONTS[rng.randrange(2)], rate=rate)
            if x is not None and len(x) >= seconds * rate:
                break
    n = int(seconds * rate)
    x = np.tile(x, int(np.ceil(n / len(x))))[:n]
    return x.astype(np.float32)


def effects(seed: int, seconds: float, rate: int = 48000, texture: bool = True) -> np.ndarray:
    """Held-out impulsive events (generated and from held-out Debian files) over an optional texture."""
    rng = np.random.default_rng(HELDOUT_SEED + seed)
    n16 = int(seconds * data.SR)
    out = np.zeros(n16, np.float32)
    if texture:
        tex = data.generated_texture(rng, seconds)
        out += tex / data._rms(tex) * 0.3
    files = [p for folder, pat in data.EFFECT_GLOBS for p in sorted(Path(folder).glob(pat))
             if data.is_test(p.name) and not any(t in p.name for t in data.EFFECT_EXCLUDE)]
    for i in range(max(2, int(seconds / 1.5))):
        if files and i % 2 == 1:
            ev, _ = read_audio(files[rng.integers(len(files))], data.SR)
            ev = data._peak_norm(ev.mean(axis=0))[: 2 * data.SR]
        else:
            ev = data.generated_event(rng)
        pos = int(rng.integers(0, max(1, n16 - len(ev))))
        seg = ev[: n16 - pos]
        out[pos:pos + len(seg)] += seg / (data._rms(seg) + 1e-6) * 0.3
    return resample(out[None], data.SR, rate)[0][: int(seconds * rate)].astype(np.float32)


@dataclass
class Mixture:
    rate: int
    speech: np.ndarray
    music: np.ndarray
    effect: np.ndarray

    @property
    def mix(self) -> np.ndarray:
        return self.speech + self.music + self.effect


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    return np.pad(x, (0, max(0, n - len(x))))[:n].astype(np.float32)


def mixture(seed: int, seconds: float = 10.0, rate: int = 48000, music_db: float = -6.0, effect_db: float = -6.0,
            voice: str = "en-gb-x-rp") -> Mixture:
    """Speech + music + effects, levels relative to speech in dB (0 dB = equal RMS)."""
    text = " ".join(data.SENTENCES[(seed + k) % len(data.SENTENCES)] for k in range(3))
    n = int(seconds * rate)
    sp = speech(text, voice, rate)
    sp = _fit(np.concatenate([np.zeros(int(0.5 * rate), np.float32), sp]), n)
    ref = data._rms(sp[np.abs(sp) > 0]) if np.any(sp) else 1.0
    m = music(seed, seconds, rate) if music_db > -90 else np.zeros(n, np.float32)
    e = effects(seed, seconds, rate) if effect_db > -90 else np.zeros(n, np.float32)
    m = _fit(m, n) / (data._rms(m) + 1e-9) * ref * 10 ** (music_db / 20) if music_db > -90 else m
    e = _fit(e, n) / (data._rms(e) + 1e-9) * ref * 10 ** (effect_db / 20) if effect_db > -90 else e
    scale = 0.25 / max(1e-6, float(np.max(np.abs(sp + m + e))))
    return Mixture(rate, sp * scale, (m * scale).astype(np.float32), (e * scale).astype(np.float32))
