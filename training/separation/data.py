"""Training material for the music/effect mask network, made only from what ships in registries.

- music: MIDI rendered by fluidsynth (always under a timeout: some MIDI render forever) with the
  Debian GM soundfonts (FluidR3_GM from ``fluid-soundfont-gm``, TimGM6mb from ``timgm6mb-soundfont``):
  pieces of the ``music21`` corpus with random GM programs, plus MIDI generated here (chord
  progressions, bass lines, arpeggios, melodies, drums) so timbres and styles vary widely.
- effects: the sounds of Debian game/theme packages (``sound-theme-freedesktop``,
  ``teeworlds-data``, ``pingus-data``; spoken ones excluded) plus generated impulsive sounds
  (shots, knocks, footsteps, debris, glass) and noise textures (rain, wind, traffic rumble,
  engine hum, room tone, crackle).
- speech leakage: espeak-ng sentences, added at low level to the effect target, because the
  network sees the residual of DeepFilterNet3, which still holds a little speech.

Everything is split into train and held-out parts by name (files) or by seed (generated), so the
held-out mixtures use music pieces, effect files and generated sounds never seen in training.
Pools are stored as 16 kHz float32 arrays in ``var/separation/pools.npz``.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import scipy.signal as sps

SR = 16000


def read_audio(path: Path, rate: int) -> tuple[np.ndarray, int]:
    """The service's decoder (PyAV + soxr), imported on use: the training loop (``Pool``,
    ``make_mixture``) also runs on a GPU machine that has numpy and torch but not the audio stack."""
    from services.common.audio import read_audio as decode

    return decode(path, rate)


SOUNDFONTS = ["/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2"]
EFFECT_GLOBS = [
    ("/usr/share/sounds/freedesktop/stereo", "*.oga"),
    ("/usr/share/games/teeworlds/data/audio", "*.wv"),
    ("/usr/share/games/pingus/data/sounds", "*.wav"),
]
# Spoken words and music among those packages' sounds: not effects.
EFFECT_EXCLUDE = ("audio-channel-", "audio-test-signal", "music_", "letsgo", "ohno", "yipee", "goodidea")
CORPUS_COMPOSERS = ["bach", "beethoven", "mozart", "haydn", "monteverdi", "trecento", "essenFolksong",
                    "ryansMammoth", "oneills1850", "josquin"]
# GM programs (0-based) by family, drums excluded: piano, chromatic perc., organ, guitar, bass,
# strings, ensemble, brass, reed, pipe, synth lead, synth pad, ethnic.
GM_MELODIC = list(range(104)) + list(range(104, 112))
GM_BASS = list(range(32, 40)) + [42, 43, 58, 70]
GM_PAD = [0, 4, 16, 19, 48, 49, 50, 52, 61, 88, 89, 90, 91, 92, 94, 95]
ESPEAK_TRAIN_VOICES = ["en-us", "en", "en-gb-scotland", "en-029", "de", "fr", "es", "it"]
ESPEAK_TEST_VOICES = ["en-gb-x-rp", "en-us+f3", "pt", "nl"]
SENTENCES = [
    "The quick brown fox jumps over the lazy dog while the radio plays softly.",
    "Please keep your voice down, the meeting has already started in the next room.",
    "We will leave at seven tomorrow morning, so pack everything tonight.",
    "Nobody expected the storm to arrive so early in the season.",
    "Could you tell me where the nearest station is, I think I am lost.",
    "The results of the experiment were surprising and nobody could explain them.",
    "Turn left at the bridge and follow the river until you see the old mill.",
    "I have never seen so many people gathered in one place before.",
]


def is_test(name: str, fraction: float = 0.2) -> bool:
    """Stable train/held-out split by name."""
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def _peak_norm(x: np.ndarray, peak: float = 0.5) -> np.ndarray:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 1e-6 else x.astype(np.float32)


# ---------------------------------------------------------------- MIDI

def _write_generated_midi(path: Path, rng: random.Random, seconds: float = 30.0) -> None:
    """A random piece: chord progression on pad, bass line, arpeggio or melody, optional drums."""
    import mido

    tpb = 480
    bpm = rng.uniform(64, 168)
    mid = mido.MidiFile(ticks_per_beat=tpb)
    beats = int(seconds * bpm / 60)
    key = rng.randrange(0, 12)
    minor = rng.random() < 0.4
    scale = [0, 2, 3, 5, 7, 8, 10] if minor else [0, 2, 4, 5, 7, 9, 11]
    degrees = [0, 3, 4, 0, 5, 3, 1, 4] if not minor else [0, 5, 2, 6, 0, 3, 4, 0]
    bar = rng.choice([3, 4, 4, 4])
    chords = [degrees[rng.randrange(len(degrees))] for _ in range(beats // bar + 2)]

    def chord_notes(deg: int, base: int) -> list[int]:
        return [base + key + scale[(deg + k) % 7] + 12 * ((deg + k) // 7) for k in (0, 2, 4)]

    def track(channel: int, program: int, events: list[tuple[int, int, int, int]]) -> None:
        tr = mido.MidiTrack()
        mid.tracks.append(tr)
        if channel == 0:
            tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
        if channel != 9:
            tr.append(mido.Message("program_change", channel=channel, program=program))
        msgs = []
        for start, dur, note, vel in events:
            msgs.append((start, 1, mido.Message("note_on", channel=channel, note=note, velocity=vel)))
            msgs.append((start + dur, 0, mido.Message("note_off", channel=channel, note=note, velocity=0)))
        msgs.sort(key=lambda m: (m[0], m[1]))
        now = 0
        for t, _, msg in msgs:
            msg.time = t - now
            now = t
            tr.append(msg)

    pad_prog, bass_prog, lead_prog = rng.choice(GM_PAD), rng.choice(GM_BASS), rng.choice(GM_MELODIC)
    pad, bass, lead, drums = [], [], [], []
    for i, deg in enumerate(chords):
        t0 = i * bar * tpb
        if t0 >= beats * tpb:
            break
        if rng.random() < 0.8:
            for n in chord_notes(deg, 48 + 12 * rng.randrange(0, 2)):
                pad.append((t0, bar * tpb - 20, n, rng.randrange(45, 85)))
        root = 36 + key + scale[deg % 7]
        pattern = rng.choice(["whole", "beats", "eighths"])
        steps = {"whole": [(0, bar)], "beats": [(b, 1) for b in range(bar)],
                 "eighths": [(b / 2, 0.5) for b in range(bar * 2)]}[pattern]
        for s, d in steps:
            bass.append((t0 + int(s * tpb), int(d * tpb) - 10, root + rng.choice([0, 0, 12, 7]), rng.randrange(60, 100)))
        style = rng.choice(["arp", "melody", "melody", "none"])
        notes = chord_notes(deg, 60 + 12 * rng.randrange(0, 2))
        if style == "arp":
            div = rng.choice([2, 3, 4])
            for k in range(bar * div):
                lead.append((t0 + k * tpb // div, tpb // div - 5, notes[k % 3], rng.randrange(50, 95)))
        elif style == "melody":
            t = 0
            while t < bar * tpb:
                d = rng.choice([tpb // 2, tpb, tpb, 2 * tpb, tpb // 4 * 3])
                if rng.random() < 0.85:
                    n = 60 + key + scale[rng.randrange(7)] + 12 * rng.randrange(0, 2)
                    lead.append((t0 + t, min(d, bar * tpb - t) - 5, n, rng.randrange(60, 110)))
                t += d
    if rng.random() < 0.55:
        for b in range(beats):
            t0 = b * tpb
            if b % bar == 0 or rng.random() < 0.2:
                drums.append((t0, 100, 36, rng.randrange(80, 120)))
            if b % 2 == 1:
                drums.append((t0, 100, rng.choice([38, 40, 39]), rng.randrange(70, 115)))
            for h in range(2):
                drums.append((t0 + h * tpb // 2, 60, rng.choice([42, 42, 44, 46, 51]), rng.randrange(40, 90)))
    track(0, pad_prog, pad)
    track(1, bass_prog, bass)
    track(2, lead_prog, lead)
    if drums:
        track(9, 0, drums)
    mid.save(str(path))


def _randomize_programs(src: Path, dst: Path, rng: random.Random) -> None:
    """Give every channel of a corpus MIDI a random GM program and a random tempo factor."""
    import mido

    mid = mido.MidiFile(str(src))
    factor = rng.uniform(0.7, 1.4)
    for tr in mid.tracks:
        channels = {m.channel for m in tr if hasattr(m, "channel") and m.channel != 9}
        for m in tr:
            if m.type == "set_tempo":
                m.tempo = int(m.tempo / factor)
            if m.type == "program_change" and m.channel != 9:
                m.program = rng.choice(GM_MELODIC)
        for ch in sorted(channels):
            tr.insert(0, mido.Message("program_change", channel=ch, program=rng.choice(GM_MELODIC)))
    mid.save(str(dst))


def render_midi(mid: Path, soundfont: str, timeout_s: float = 25.0, max_s: float = 45.0,
                rate: int = SR) -> np.ndarray | None:
    """fluidsynth -> mono float32 at ``rate``, or None when it fails or times out."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        try:
            subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.7", "-r", str(rate), "-F", str(out), soundfont,
                            str(mid)], timeout=timeout_s, check=True, capture_output=True)
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
            return None
        if not out.exists():
            return None
        audio, _ = read_audio(out, rate)
    x = audio.mean(axis=0)[: int(max_s * rate)]
    if np.sqrt(np.mean(x ** 2) + 1e-12) < 1e-3:
        return None
    return _peak_norm(x)


def music_pool(work: Path, n_generated: int, n_corpus: int, seed: int, budget_s: float) -> dict[str, list]:
    from music21 import corpus

    rng = random.Random(seed)
    pool: dict[str, list] = {"train": [], "test": []}
    t_end = time.monotonic() + budget_s
    jobs: list[tuple[str, str]] = [("gen", str(i)) for i in range(n_generated)]
    paths = []
    for comp in CORPUS_COMPOSERS:
        try:
            paths += [str(p) for p in corpus.getComposer(comp)]
        except Exception:  # noqa: BLE001, S112 - a composer missing from this corpus version
            continue
    rng.shuffle(paths)
    jobs += [("corpus", p) for p in paths[:n_corpus]]
    rng.shuffle(jobs)
    for kind, ident in jobs:
        if time.monotonic() > t_end:
            break
        mid = work / f"piece{zlib.crc32(ident.encode())}.mid"
        try:
            if kind == "gen":
                _write_generated_midi(mid, random.Random(seed * 1000 + int(ident)), rng.uniform(20, 40))
            else:
                raw = work / "raw.mid"
                corpus.parse(ident).write("midi", fp=str(raw))
                _randomize_programs(raw, mid, rng)
        except Exception:  # noqa: BLE001, S112 - music21 cannot convert every corpus file
            continue
        x = render_midi(mid, rng.choice(SOUNDFONTS))
        if x is not None and len(x) > 3 * SR:
            pool["test" if is_test(f"{kind}:{ident}", 0.15) else "train"].append(x)
    return pool


# ---------------------------------------------------------------- effects

def _env(n: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / SR
    return (1 - np.exp(-t / max(attack, 1e-4))) * np.exp(-t / decay)


def _bandnoise(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    sos = sps.butter(2, [max(lo, 20) / (SR / 2), min(hi, 7800) / (SR / 2)], "bandpass", output="sos")
    return sps.sosfilt(sos, rng.standard_normal(n)).astype(np.float32)


def generated_event(rng: np.random.Generator) -> np.ndarray:
    """One impulsive sound: shot, knock, footsteps, debris, glass, whoosh, door slam."""
    kind = rng.choice(["shot", "knock", "steps", "debris", "glass", "whoosh", "slam", "zap"])
    if kind == "shot":
        n = int(rng.uniform(0.3, 1.2) * SR)
        x = _bandnoise(rng, n, rng.uniform(80, 400), rng.uniform(2500, 7800)) * _env(n, 0.001, rng.uniform(0.04, 0.25))
        x += 0.5 * np.sin(2 * np.pi * rng.uniform(40, 90) * np.arange(n) / SR) * _env(n, 0.002, 0.1)
    elif kind == "knock":
        n = int(0.25 * SR)
        reps = rng.integers(1, 5)
        gap = int(rng.uniform(0.12, 0.3) * SR)
        x = np.zeros(n + reps * gap, np.float32)
        for r in range(reps):
            f = rng.uniform(120, 400)
            hit = np.sin(2 * np.pi * f * np.arange(n) / SR) * _env(n, 0.0005, 0.03)
            hit += 0.6 * _bandnoise(rng, n, 500, 4000) * _env(n, 0.0002, 0.008)
            x[r * gap: r * gap + n] += hit
    elif kind == "steps":
        step, reps = int(0.15 * SR), rng.integers(3, 9)
        gap = int(rng.uniform(0.35, 0.7) * SR)
        x = np.zeros(step + reps * gap, np.float32)
        lo, hi = rng.uniform(60, 300), rng.uniform(1500, 6000)
        for r in range(reps):
            x[r * gap: r * gap + step] += _bandnoise(rng, step, lo, hi) * _env(step, 0.002, rng.uniform(0.01, 0.04))
    elif kind == "debris":
        n = int(rng.uniform(0.5, 2.0) * SR)
        x = np.zeros(n, np.float32)
        for _ in range(rng.integers(10, 60)):
            m = int(rng.uniform(0.005, 0.05) * SR)
            p = rng.integers(0, n - m)
            x[p:p + m] += rng.uniform(0.1, 1) * _bandnoise(rng, m, 300, 7000) * _env(m, 0.0002, 0.01)
    elif kind == "glass":
        n = int(rng.uniform(0.4, 1.5) * SR)
        t = np.arange(n) / SR
        x = np.zeros(n)
        for _ in range(rng.integers(4, 12)):
            x += rng.uniform(0.2, 1) * np.sin(2 * np.pi * rng.uniform(1500, 7500) * t) * _env(n, 0.0005, rng.uniform(0.02, 0.3))
        x += 0.5 * _bandnoise(rng, n, 2000, 7800) * _env(n, 0.0005, 0.05)
    elif kind == "whoosh":
        n = int(rng.uniform(0.4, 1.5) * SR)
        x = _bandnoise(rng, n, 200, 5000) * np.hanning(n) ** 2
    elif kind == "slam":
        n = int(rng.uniform(0.3, 0.8) * SR)
        x = _bandnoise(rng, n, 40, 1500) * _env(n, 0.001, 0.08)
    else:  # zap
        n = int(rng.uniform(0.1, 0.6) * SR)
        f = np.linspace(rng.uniform(2000, 6000), rng.uniform(100, 800), n)
        x = np.sign(np.sin(2 * np.pi * np.cumsum(f) / SR)) * _env(n, 0.001, 0.1) * 0.5
    return _peak_norm(np.asarray(x, np.float32))


def generated_texture(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A stationary or slowly varying background: rain, wind, traffic, engine, room tone, crackle."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    kind = rng.choice(["rain", "wind", "traffic", "engine", "room", "crackle", "crowd_noise"])
    if kind == "rain":
        x = _bandnoise(rng, n, 800, 7800) * 0.4
        drops = np.zeros(n)
        idx = rng.integers(0, n, int(seconds * rng.uniform(50, 400)))
        drops[idx] = rng.uniform(0.2, 1.0, idx.size)
        x += sps.lfilter([1, -0.95], [1], drops) * 0.5
    elif kind == "wind":
        x = np.zeros(n)
        for _ in range(2):
            lfo = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.4) * t + rng.uniform(0, 6))
            x += _bandnoise(rng, n, rng.uniform(100, 300), rng.uniform(600, 2500)) * lfo
    elif kind == "traffic":
        swell = 0.3 + 0.7 * np.clip(np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t), 0, None) ** 2
        x = _bandnoise(rng, n, 30, rng.uniform(300, 1200)) * swell
    elif kind == "engine":
        f0 = rng.uniform(25, 90) * (1 + 0.05 * np.sin(2 * np.pi * 0.3 * t))
        ph = 2 * np.pi * np.cumsum(f0) / SR
        x = sum(np.sin(k * ph) / k for k in range(1, 12)) + 0.5 * _bandnoise(rng, n, 50, 2000)
    elif kind == "room":
        b = sps.lfilter([1], [1, -0.98], rng.standard_normal(n))
        x = b / (np.std(b) + 1e-9) + 0.2 * _bandnoise(rng, n, 50, 6000)
    elif kind == "crackle":
        x = 0.2 * _bandnoise(rng, n, 200, 6000)
        idx = rng.integers(0, n, int(seconds * rng.uniform(20, 120)))
        imp = np.zeros(n)
        imp[idx] = rng.uniform(-1, 1, idx.size)
        x += sps.lfilter([1, -0.5], [1], imp)
    else:
        mod = 0.6 + 0.4 * sps.sosfilt(sps.butter(2, 4 / (SR / 2), output="sos"), rng.standard_normal(n)) * 3
        x = _bandnoise(rng, n, 200, 3500) * mod
    return _peak_norm(np.asarray(x, np.float32), 0.3)


def effect_pool(seed: int, n_events: int, n_textures: int) -> dict[str, dict[str, list]]:
    pool = {s: {"events": [], "textures": []} for s in ("train", "test")}
    for folder, pattern in EFFECT_GLOBS:
        for p in sorted(Path(folder).glob(pattern)):
            if any(tag in p.name for tag in EFFECT_EXCLUDE):
                continue
            try:
                audio, _ = read_audio(p, SR)
            except Exception:  # noqa: BLE001, S112 - skip undecodable files
                continue
            x = audio.mean(axis=0)
            if len(x) < SR // 20:
                continue
            split = "test" if is_test(p.name) else "train"
            pool[split]["textures" if len(x) > 4 * SR else "events"].append(_peak_norm(x))
    for split, base in (("train", seed), ("test", seed + 7919)):
        rng = np.random.default_rng(base)
        k = 1 if split == "train" else 4
        pool[split]["events"] += [generated_event(rng) for _ in range(n_events // k)]
        pool[split]["textures"] += [generated_texture(rng, 20.0) for _ in range(n_textures // k)]
    return pool


def speech_pool(seed: int) -> dict[str, list]:
    pool: dict[str, list] = {"train": [], "test": []}
    with tempfile.TemporaryDirectory() as tmp:
        for split, voices in (("train", ESPEAK_TRAIN_VOICES), ("test", ESPEAK_TEST_VOICES)):
            for i, voice in enumerate(voices):
                out = Path(tmp) / f"{voice}.wav"
                text = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(3))
                subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(out), text], check=True,
                               capture_output=True, timeout=60)
                audio, _ = read_audio(out, SR)
                pool[split].append(_peak_norm(audio.mean(axis=0)))
    return pool


def build_pools(out: Path, seed: int = 1234, budget_s: float = 360.0, recorded: bool = False) -> Path:
    """Generated material (MIDI, synthetic effects, espeak-ng); with ``recorded``, also the real
    recordings and voices of the calibration packages (``real.py``) and fewer generated effects.
    Each pool is split into train and held-out parts."""
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        music = music_pool(Path(tmp), n_generated=160, n_corpus=160, seed=seed, budget_s=budget_s)
    print(f"music: {len(music['train'])} train / {len(music['test'])} held-out pieces "
          f"({time.monotonic() - t0:.0f} s)", flush=True)
    effects = effect_pool(seed, n_events=240 if recorded else 400, n_textures=40 if recorded else 60)
    speech = speech_pool(seed)
    if recorded:
        _add_recorded(seed, music, effects, speech)
    print(f"effects: {[(s, len(v['events']), len(v['textures'])) for s, v in effects.items()]}, "
          f"speech: {len(speech['train'])}/{len(speech['test'])} ({time.monotonic() - t0:.0f} s)", flush=True)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        for name, items in (("music", music[split]), ("events", effects[split]["events"]),
                            ("textures", effects[split]["textures"]), ("speech", speech[split])):
            arrays[f"{split}_{name}"] = np.concatenate(items).astype(np.float32)
            arrays[f"{split}_{name}_offsets"] = np.cumsum([0] + [len(x) for x in items])
    np.savez(out, **arrays)
    return out


def _add_recorded(seed: int, music: dict, effects: dict, speech: dict) -> None:
    from training.separation import real

    for split, pieces in real.music().items():
        music[split] += pieces
    for split, part in real.effects().items():
        for kind in ("events", "textures"):
            effects[split][kind] += part[kind]
    for split, voices in real.speech(seed).items():
        speech[split] += voices
    print(f"with recordings: music {len(music['train'])} / {len(music['test'])} pieces", flush=True)


class Pool:
    """Random access to one split's pools."""

    def __init__(self, path: Path, split: str) -> None:
        data = np.load(path)
        self.items: dict[str, list[np.ndarray]] = {}
        for name in ("music", "events", "textures", "speech"):
            flat, off = data[f"{split}_{name}"], data[f"{split}_{name}_offsets"]
            self.items[name] = [flat[off[i]:off[i + 1]] for i in range(len(off) - 1)]


def _segment(rng: np.random.Generator, x: np.ndarray, n: int) -> np.ndarray:
    if len(x) <= n:
        reps = int(np.ceil(n / len(x)))
        x = np.tile(x, reps)
    s = rng.integers(0, len(x) - n + 1)
    return x[s:s + n]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2) + 1e-10))


def make_mixture(pool: Pool, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(music, effect) targets of n samples; the input is their sum. Speech leakage goes to effect."""
    music = _segment(rng, pool.items["music"][rng.integers(len(pool.items["music"]))], n).copy()
    if rng.random() < 0.25:
        other = _segment(rng, pool.items["music"][rng.integers(len(pool.items["music"]))], n)
        music += other * rng.uniform(0.3, 1.0)
    music /= _rms(music)
    effect = np.zeros(n, np.float32)
    if rng.random() < 0.7:
        tex = _segment(rng, pool.items["textures"][rng.integers(len(pool.items["textures"]))], n)
        effect += tex / _rms(tex) * 10 ** (rng.uniform(-15, 0) / 20)
    for _ in range(rng.integers(1 if effect.any() else 2, 6)):
        ev = pool.items["events"][rng.integers(len(pool.items["events"]))]
        ev = ev[: n]
        pos = rng.integers(-len(ev) // 2, n)
        a, b = max(pos, 0), min(pos + len(ev), n)
        if b > a:
            effect[a:b] += ev[a - pos: b - pos] / (_rms(ev) + 1e-6) * 10 ** (rng.uniform(-10, 5) / 20) * 0.3
    effect /= _rms(effect)
    effect *= 10 ** (rng.uniform(-12, 12) / 20)
    if rng.random() < 0.5:
        sp = _segment(rng, pool.items["speech"][rng.integers(len(pool.items["speech"]))], n)
        effect += sp / _rms(sp) * _rms(music + effect) * 10 ** (rng.uniform(-30, -12) / 20)
    gain = 10 ** (rng.uniform(-30, -10) / 20) / _rms(music + effect)
    return (music * gain).astype(np.float32), (effect * gain).astype(np.float32)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="var/separation/pools.npz")
    ap.add_argument("--recorded", action="store_true", help="add the calibration packages' recordings")
    ap.add_argument("--budget-s", type=float, default=360.0, help="time budget of the MIDI rendering")
    args = ap.parse_args()
    path = build_pools(Path(args.out), budget_s=args.budget_s, recorded=args.recorded)
    print(f"wrote {path}")
