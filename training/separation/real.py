"""Real recordings for training the music/effect network: calibration and training packages only.

The held-out split of ``bench/heldout`` is by Debian package. What trains here comes only from
its ``calib`` and ``train`` sides (``ho.clips(kind, role)``, ``ho.voices("calib")``), never from
the packages that evaluate (wesnoth-1.16-music, wesnoth-1.16-data, colobot-common-sounds, the eval
voices) or tune the blend (warzone2100-music, lincity-ng-data):

- music: supertuxkart-data ``music/``, extremetuxracer-data ``music/`` (recorded and produced
  game scores: orchestra, rock, electronic, folk);
- effects: supertuxkart-data ``sfx/`` (jingles, fanfares and spoken clips excluded),
  extremetuxracer-data ``sounds/``; the freedesktop, teeworlds and pingus sounds come through
  ``data.EFFECT_GLOBS``;
- ambience (effect textures): supertuxkart-data loops (rain, river, waterfall, restaurant,
  birds, fireworks, radio static);
- ``train`` packages (``ho.CLIPS``): the scores of flare, freedroidrpg, hedgewars, marsshooter,
  megaglest, supertux and widelands (at most ``TRAIN_MAX_S`` of each, so that many scores weigh
  more than long ones), and their game sounds without spoken lines;
- speech: asterisk-core-sounds-en-wav and -es-wav (Allison, 8 kHz recordings), espeak-ng with
  voice variants, pitch and speed drawn at random, and flite (kal, awb, rms, slt).
"""

from __future__ import annotations

import random
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bench.heldout import sources as ho
from services.common.audio import read_audio
from training.separation.data import SENTENCES, SR, _peak_norm, is_test

# supertuxkart sfx that are music (jingles, fanfares) or speech, not effects.
NOT_EFFECTS = ("fanfare", "gp_end", "race_finish", "pre_start_race", "start_race", "track_intro", "gnu_flute",
               "sara_airport_pa", "WilhelmScream", "ugh", "wee", "goal_scored")
ESPEAK_VOICES = ["en-us", "en", "en-gb-scotland", "en-029", "de", "fr", "es", "it", "pl", "sv", "cs", "hu",
                 "ro", "tr", "el", "fi", "da", "id", "sw", "hi"]
ESPEAK_VARIANTS = ["", "+m1", "+m3", "+m5", "+f1", "+f2", "+f4", "+croak", "+klatt", "+whisper"]
FLITE_VOICES = ["kal", "awb", "rms", "slt"]
AUDIO_EXT = (".ogg", ".wav", ".oga", ".flac")
TRAIN_ROLES = ("calib", "train")
TRAIN_MAX_S = 30.0   # per score of a `train` package: 155 scores, about 75 min


def _mono(path: Path) -> np.ndarray | None:
    try:
        audio, _ = read_audio(path, SR)
    except Exception:  # noqa: BLE001 - skip undecodable files
        return None
    return audio.mean(axis=0)


def music(piece_s: float = 20.0, max_s: float = 80.0) -> dict[str, list]:
    """Recorded scores cut into pieces (at most ``max_s`` of each calib track, ``TRAIN_MAX_S`` of
    each train one, from the middle), split by file name."""
    pool: dict[str, list] = {"train": [], "test": []}
    tracks = [(c.path, max_s) for c in ho.clips("music", "calib")]
    tracks += [(c.path, TRAIN_MAX_S) for c in ho.clips("music", "train")]
    for p, limit in tracks:
        x = _mono(p)
        if x is None or len(x) < 5 * SR:
            continue
        start = max(0, (len(x) - int(limit * SR)) // 2)
        x = x[start:start + int(limit * SR)]
        split = "test" if is_test(p.name) else "train"
        step = int(piece_s * SR)
        pool[split] += [_peak_norm(x[i:i + step]) for i in range(0, len(x) - 3 * SR, step)]
    return pool


def effects() -> dict[str, dict[str, list]]:
    """Recorded game sounds (events) and ambience loops (textures), split by file name. The
    freedesktop sounds come through ``data.EFFECT_GLOBS`` already."""
    pool = {s: {"events": [], "textures": []} for s in ("train", "test")}
    clips = [(c, "events") for role in TRAIN_ROLES for c in ho.clips("effect", role) if c.source != "freedesktop"]
    for clip, kind in clips + [(c, "textures") for c in ho.clips("ambience", "calib")]:
        if any(tag in clip.path.stem for tag in NOT_EFFECTS):
            continue
        p = clip.path
        x = _mono(p)
        if x is None or len(x) < SR // 20:
            continue
        kind = "textures" if len(x) > 6 * SR else kind
        pool["test" if is_test(p.name) else "train"][kind].append(_peak_norm(x[: 30 * SR]))
    return pool


def speech(seed: int, n_asterisk: int = 60, n_espeak: int = 60, n_flite: int = 16) -> dict[str, list]:
    """Calibration voices: Allison's recorded prompts joined with pauses, espeak-ng, flite. The
    prompts are split by file name before they are joined, so no recording is heard in both the
    train and the held-out clips (until 2026-12-05 each clip drew from all of them)."""
    rng = random.Random(seed)
    pool: dict[str, list] = {"train": [], "test": []}
    prompts = [u.path for u in ho.voices("calib")]
    by_split = {split: [p for p in prompts if is_test(Path(p).name) == (split == "test")] for split in pool}
    for i in range(n_asterisk):
        parts = []
        split = "test" if i % 10 == 0 else "train"
        for p in rng.sample(by_split[split], min(6, len(by_split[split]))):
            x = _mono(p)
            if x is not None:
                parts += [x, np.zeros(int(rng.uniform(0.05, 0.6) * SR), np.float32)]
        if parts:
            pool[split].append(_peak_norm(np.concatenate(parts)))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        for i in range(n_espeak + n_flite):
            text = " ".join(rng.sample(SENTENCES, 3))
            if i < n_espeak:
                voice = rng.choice(ESPEAK_VOICES) + rng.choice(ESPEAK_VARIANTS)
                cmd = ["espeak-ng", "-v", voice, "-s", str(rng.randint(120, 190)), "-p", str(rng.randint(20, 80)),
                       "-w", str(out), text]
            else:
                cmd = ["flite", "-voice", FLITE_VOICES[i % len(FLITE_VOICES)], "-t", text, "-o", str(out)]
            if subprocess.run(cmd, check=False, capture_output=True, timeout=60).returncode != 0:
                continue
            x = _mono(out)
            if x is not None and len(x) > SR:
                pool["test" if i % 10 == 0 else "train"].append(_peak_norm(x))
    return pool
