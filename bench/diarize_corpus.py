"""Conversations built on the fly from recorded voices, ambience and music (bench/heldout).

``conversation(role, n_speakers, seed, seconds)`` joins real prompts of ``n_speakers`` voices of
the split ``role`` into turns (1-3 prompts each, 0.15-0.4 s pauses inside a turn, 0.2-1.2 s
between turns, about one turn in seven overlapping the previous by 0.2-0.6 s), then adds a loop
of the split's ambience at 0-20 dB SNR and, in half of them, a music bed at -20..-6 dB under
the speech. ``monologue(...)`` does the same with one transcribed voice and long turns (3-8
prompts), for the word error rate: every voice of the eval split with transcripts is in its own
language, so only a one-voice recording has a whole reference text.

The calib split's voices: Allison (one recorded speaker, en and es) and 13 festival voices, each
built from one real speaker's recordings (``sources.SYNTH_VOICES``: en, ca, cs, fi, it, hi; 5
female, 8 male, one a child); half of the calib conversations are band-limited to the telephone
band (8 kHz) like the eval prompts. Until 2026-12-03 the six espeak-ng voices of the synthetic
bench filled the calib seats beside Allison: constants tuned on such distinct formant voices
undercounted the real eval voices. Nothing here is written to the repository: audio lives in
memory (the festival prompts are synthesized once into var/heldout/festival/).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import resample_poly

from bench.heldout import sources as ho
from services.common.audio import InvalidAudio

RATE = 16000
SPEECH_RMS_DB = -23.0


@dataclass
class Piece:
    speaker: str
    start: float
    end: float
    text: str | None


@dataclass
class Sample:
    name: str
    audio: np.ndarray                       # float32 (samples,) 16 kHz
    pieces: list[Piece]
    speakers: list[str]
    snr_db: float
    music_db: float | None
    meta: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.audio) / RATE

    @property
    def text(self) -> str:
        return " ".join(p.text or "" for p in self.pieces)


def trim(audio: np.ndarray, rel_db: float = -35.0) -> np.ndarray:
    """Cut leading and trailing silence: 10 ms frames quieter than ``rel_db`` under the loudest."""
    frame = RATE // 100
    n = len(audio) // frame
    if n == 0:
        return audio[:0]
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    loud = np.flatnonzero(db > db.max() + rel_db)
    return audio[loud[0] * frame:(loud[-1] + 1) * frame]


def _level(audio: np.ndarray, db: float) -> np.ndarray:
    rms = np.sqrt(np.mean(audio ** 2) + 1e-12)
    return (audio * 10 ** (db / 20) / rms).astype(np.float32)


def telephone(audio: np.ndarray) -> np.ndarray:
    """Band-limited to 4 kHz, as an 8 kHz telephone recording is (16 kHz -> 8 kHz -> 16 kHz)."""
    return resample_poly(resample_poly(audio, 1, 2), 2, 1)[: len(audio)].astype(np.float32)


class _Voices:
    """Utterance pools per speaker for one split; the festival voices too for calib."""

    def __init__(self, role: str, transcribed_only: bool = False) -> None:
        self.role = role
        self.pools: dict[str, list] = {}
        for u in ho.voices(role) + ([] if transcribed_only else ho.synth_voices(role)):
            if u.text or not transcribed_only:     # transcribed: one language a pool (Allison speaks two)
                self.pools.setdefault(u.source if transcribed_only else u.speaker, []).append(u)

    def names(self) -> list[str]:
        return sorted(self.pools)

    def utterance(self, speaker: str, rng: random.Random) -> tuple[np.ndarray, str | None]:
        item = rng.choice(self.pools[speaker])
        try:
            return trim(ho.load(item.path, RATE)), item.text
        except InvalidAudio:  # a few packaged prompts do not decode (asterisk-prompt-es-co vm-first.gsm)
            return np.zeros(0, np.float32), None


def _background(kind: str, role: str, rng: random.Random, n: int) -> np.ndarray:
    pool = ho.clips(kind, role)
    clip = ho.load(rng.choice(pool).path, RATE)
    while len(clip) < RATE:  # silent or tiny: try another
        clip = ho.load(rng.choice(pool).path, RATE)
    start = rng.randrange(max(1, len(clip) - n)) if len(clip) > n else 0
    reps = int(np.ceil((n + start) / len(clip)))
    return np.tile(clip, reps)[start:start + n].astype(np.float32)


def _conditions(seed: int) -> tuple[random.Random, float, float | None]:
    """A recording's SNR, music level and the generator that picks and places its beds, apart
    from the one that draws its prompts: drawn after the prompts, every condition of the split
    moved whenever a voice's pool changed (2026-12-05: twelve of 15 eval conversations came out
    under 10 dB SNR, seven before, once the non-speech prompts left the pools)."""
    rng = random.Random(f"conditions:{seed}")
    snr = rng.uniform(0, 20)
    music = rng.uniform(-20, -6) if rng.random() < 0.5 else None
    return rng, snr, music


def _mix(speech: np.ndarray, pieces: list[Piece], role: str, rng: random.Random, snr_db: float,
         music_db: float | None) -> np.ndarray:
    active = np.zeros(len(speech), bool)
    for p in pieces:
        active[int(p.start * RATE):int(p.end * RATE)] = True
    p_speech = float(np.mean(speech[active] ** 2)) if active.any() else 1e-6
    out = speech.copy()
    for kind, db in (("ambience", -snr_db), ("music", music_db)):
        if db is None:
            continue
        bed = _background(kind, role, rng, len(speech))
        bed *= np.sqrt(p_speech * 10 ** (db / 10) / (np.mean(bed ** 2) + 1e-12))
        out += bed
    peak = np.abs(out).max()
    return (out * (0.9 / peak) if peak > 0.9 else out).astype(np.float32)


def _assemble(turns: list[list[tuple[np.ndarray, str | None]]], speakers_of_turns: list[str],
              rng: random.Random, overlap_p: float) -> tuple[np.ndarray, list[Piece]]:
    pos = int(0.5 * RATE)
    placed: list[tuple[int, np.ndarray]] = []
    pieces: list[Piece] = []
    for k, (turn, spk) in enumerate(zip(turns, speakers_of_turns, strict=True)):
        if k:
            prev_end = pos
            gap = rng.uniform(0.2, 1.2)
            if rng.random() < overlap_p:
                gap = -rng.uniform(0.2, 0.6)
            pos = max(int(prev_end + gap * RATE), int(pieces[-1].start * RATE) + RATE)
        for j, (audio, text) in enumerate(turn):
            if j:
                pos += int(rng.uniform(0.15, 0.4) * RATE)
            placed.append((pos, audio))
            pieces.append(Piece(spk, pos / RATE, (pos + len(audio)) / RATE, text))
            pos += len(audio)
    n = max(p + len(a) for p, a in placed) + int(0.5 * RATE)
    speech = np.zeros(n, np.float32)
    for p, a in placed:
        speech[p:p + len(a)] += a
    return speech, pieces


def conversation(role: str, n_speakers: int, seed: int, seconds: float) -> Sample:
    rng = random.Random(seed)
    pool = _Voices(role)
    speakers = rng.sample(pool.names(), n_speakers)
    gains = {s: SPEECH_RMS_DB + rng.uniform(-3, 3) for s in speakers}
    turns, who, total = [], [], 0.0
    spoken: dict[str, float] = {}
    order = speakers[:]
    rng.shuffle(order)
    while total < seconds or len(set(who)) < n_speakers:
        if len(who) < n_speakers:
            spk = order[len(who)]
        else:  # the quieter a voice has been so far, the likelier it speaks next
            others = [s for s in speakers if s != who[-1]]
            spk = rng.choices(others, [1.0 / (1.0 + spoken.get(s, 0.0)) for s in others])[0]
        turn = []
        for _ in range(rng.randint(1, 3)):
            audio, text = pool.utterance(spk, rng)
            if len(audio) > RATE // 4:
                turn.append((_level(audio, gains[spk]), text))
        if not turn:
            continue
        turns.append(turn)
        who.append(spk)
        said = sum(len(a) for a, _ in turn) / RATE
        spoken[spk] = spoken.get(spk, 0.0) + said
        total += said + 0.7
    speech, pieces = _assemble(turns, who, rng, overlap_p=1 / 7)
    # calib only, from its own generator so that the eval conversations stay as they were
    phone = role == "calib" and random.Random(seed + 1).random() < 0.5
    if phone:
        speech = telephone(speech)
    beds, snr, music = _conditions(seed)
    audio = _mix(speech, pieces, role, beds, snr, music)
    return Sample(f"{role}-{n_speakers}spk-s{seed}", audio, pieces, speakers, snr, music, {"telephone": phone})


def monologue(role: str, seed: int, seconds: float) -> Sample:
    """One transcribed voice, long turns of 3-8 prompts: the case where words got lost."""
    rng = random.Random(seed)
    pool = _Voices(role, transcribed_only=True)
    spk = rng.choice(pool.names())
    turns, total = [], 0.0
    while total < seconds:
        turn = []
        for _ in range(rng.randint(3, 8)):
            audio, text = pool.utterance(spk, rng)
            if len(audio) > RATE // 4 and text:
                turn.append((_level(audio, SPEECH_RMS_DB), text))
        turns.append(turn)
        total += sum(len(a) for a, _ in turn) / RATE + 0.3 * len(turn)
    speech, pieces = _assemble(turns, [spk] * len(turns), rng, overlap_p=0.0)
    beds, snr, music = _conditions(seed)
    audio = _mix(speech, pieces, role, beds, snr, music)
    return Sample(f"{role}-mono-{spk.split(':')[-1]}-s{seed}", audio, pieces, [spk], snr, music)


RECORDED_SNRS = (None, 10.0, 5.0, 0.0)   # as recorded, then under eval ambience


def recorded(snr_db: float | None, seed: int = 0) -> Sample:
    """The recorded two-speaker telephone conversation (``sources.recorded_conversation``), as
    recorded (``snr_db`` None: its own line noise) or under a loop of the eval ambience at
    ``snr_db`` against its reference speech."""
    path, turns = ho.recorded_conversation()
    audio = ho.load(path, RATE)
    pieces = [Piece(spk, s, e, None) for s, e, spk in turns]
    speakers = sorted({spk for _, _, spk in turns})
    if snr_db is not None:
        audio = _mix(audio, pieces, "eval", random.Random(f"recorded:{seed}"), snr_db, None)
    return Sample(f"recorded-2spk-{'line' if snr_db is None else f'{snr_db:.0f}dB'}", audio, pieces, speakers,
                  float("inf") if snr_db is None else snr_db, None)
