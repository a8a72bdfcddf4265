"""Generated conversations with ground truth, for the diarize tests and bench.

espeak-ng speaks each turn with a voice of known gender and accent; turns are joined with
short gaps. The truth (speaker, start, end, text) is measured on the generated audio: each
turn's speech extent is where its waveform is above -40 dBFS, so DER is scored against where
the voice really is, not where the file was cut.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

RATE = 16000


@dataclass(frozen=True)
class Voice:
    name: str          # espeak-ng voice, e.g. "en-us+f2"
    gender: str        # "male" | "female"
    pitch: int = 50    # espeak-ng -p (0..99)
    speed: int = 165   # words per minute


# Chosen so CAM++ tells them apart (cross-voice cosine <= 0.69 on whole turns; espeak-ng
# variants of one base voice at other pitches are near-identical and would not be a fair test).
# Genders alternate, so a 2-speaker conversation is male/female and a 3+ one has a same-gender pair.
VOICES = (
    Voice("en-us+m3", "male", 40),
    Voice("en-us+f4", "female", 70),
    Voice("en-gb-scotland+m1", "male", 30),
    Voice("en-us+Andrea", "female", 65),
    Voice("en-029+m7", "male", 45),
    Voice("en-gb-scotland+f5", "female", 75),
)

SENTENCES = (
    "The train to the city leaves at seven every morning.",
    "I think we should paint the kitchen a lighter colour.",
    "Could you send me the report before the meeting starts?",
    "My brother bought a new bicycle last weekend.",
    "The weather was cold and windy all day yesterday.",
    "We need more chairs for the guests in the garden.",
    "She plays the piano better than anyone I know.",
    "The library closes early on Sundays.",
    "Please remember to water the plants while I am away.",
    "The doctor said I should walk for an hour each day.",
    "Our team finished the project two weeks ahead of schedule.",
    "There is a small bakery around the corner from the station.",
    "He forgot his umbrella and got wet on the way home.",
    "The children are learning to swim this summer.",
    "Let us meet at the coffee shop near the river.",
    "I have never seen so many stars in the sky.",
    "The price of fresh fruit has gone up again.",
    "They moved to a quiet village in the mountains.",
    "Turn left at the second traffic light and park behind the bank.",
    "The museum has a new exhibition about ancient ships.",
    "Dinner will be ready in about twenty minutes.",
    "We watched an old film about a detective in London.",
    "The garden looks beautiful after the rain.",
    "Can you help me carry these boxes upstairs?",
)

# Backchannels and short replies: the turns diarizers miss or give to the wrong voice.
SHORT = ("Yes, exactly.", "Okay.", "Right, I see.", "Sure.", "No, not really.", "Really?", "Thank you.", "Good idea.")


@dataclass
class Turn:
    speaker: int
    start: float
    end: float
    text: str


@dataclass
class Conversation:
    audio: np.ndarray                      # float32 (samples,) at 16 kHz
    turns: list[Turn]
    voices: list[Voice]
    rate: int = RATE
    meta: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.rate

    def write(self, path: Path) -> Path:
        sf.write(str(path), self.audio, self.rate, subtype="PCM_16")
        return path


def speak(text: str, voice: Voice) -> np.ndarray:
    """espeak-ng -> float32 16 kHz mono, trimmed to the voiced extent."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.speed),
                        "-w", tmp.name, text], check=True, capture_output=True)
        audio, rate = sf.read(tmp.name, dtype="float32")
    audio = soxr.resample(audio, rate, RATE).astype(np.float32)
    return trim(audio)


def trim(audio: np.ndarray, floor_db: float = -40.0) -> np.ndarray:
    frame = RATE // 100
    n = len(audio) // frame
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms) > floor_db)
    if len(loud) == 0:
        return audio[:0]
    return audio[loud[0] * frame:(loud[-1] + 1) * frame]


def conversation(voices: list[Voice], n_turns: int, seed: int = 0, gap: tuple[float, float] = (0.4, 0.9),
                 lead: float = 0.5, sentences: tuple[str, ...] = SENTENCES) -> Conversation:
    """Turns alternate between speakers (never the same twice in a row), every speaker speaks."""
    rng = random.Random(seed)
    order: list[int] = list(range(len(voices)))
    while len(order) < n_turns:
        choice = rng.randrange(len(voices))
        if choice != order[-1] or len(voices) == 1:
            order.append(choice)
    texts = rng.sample(list(sentences), k=min(n_turns, len(sentences)))
    while len(texts) < n_turns:
        texts.append(rng.choice(sentences))
    pieces = [np.zeros(int(lead * RATE), np.float32)]
    pos = len(pieces[0])
    turns = []
    for speaker, text in zip(order[:n_turns], texts, strict=True):
        voiced = speak(text, voices[speaker]) * 0.5
        turns.append(Turn(speaker, pos / RATE, (pos + len(voiced)) / RATE, text))
        silence = np.zeros(int(rng.uniform(*gap) * RATE), np.float32)
        pieces += [voiced, silence]
        pos += len(voiced) + len(silence)
    audio = np.concatenate(pieces).astype(np.float32)
    return Conversation(audio, turns, list(voices), meta={"seed": seed})


NOISE_SLOPES = {"white": 0.0, "pink": 0.5, "red": 1.0}   # amplitude ~ 1 / f ** slope


def noisy(conv: Conversation, snr_db: float, kind: str = "white", seed: int = 0) -> np.ndarray:
    """``conv``'s audio with stationary noise at ``snr_db`` against its speech (samples above
    -80 dBFS): white, pink or red (brown), shaped in the frequency domain."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=len(conv.audio))
    if NOISE_SLOPES[kind]:
        spectrum = np.fft.rfft(noise) / np.arange(1, len(noise) // 2 + 2) ** NOISE_SLOPES[kind]
        noise = np.fft.irfft(spectrum, len(noise))
    speech = conv.audio[np.abs(conv.audio) > 1e-4]
    noise *= np.sqrt(np.mean(speech ** 2) / 10 ** (snr_db / 10)) / noise.std()
    return (conv.audio + noise).astype(np.float32)


def noise_music(seconds: float, seed: int = 0) -> np.ndarray:
    """A few bars of synthetic music: plucked harmonic notes of a chord progression, with drums."""
    rng = np.random.default_rng(seed)
    t_note = 0.25
    n = int(seconds * RATE)
    out = np.zeros(n, np.float32)
    chords = [[220.0, 277.2, 329.6], [196.0, 246.9, 293.7], [174.6, 220.0, 261.6], [196.0, 246.9, 293.7]]
    step = int(t_note * RATE)
    t = np.arange(step * 3) / RATE
    for i, start in enumerate(range(0, n, step)):
        chord = chords[(i // 8) % len(chords)]
        f = chord[rng.integers(0, 3)] * rng.choice([1, 2])
        note = sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, 5)) * np.exp(-t * 4)
        end = min(n, start + len(note))
        out[start:end] += 0.15 * note[: end - start].astype(np.float32)
        if i % 2 == 0:  # kick drum
            k = np.sin(2 * np.pi * 60 * t[:2000] * np.exp(-t[:2000] * 8)) * np.exp(-t[:2000] * 20)
            end = min(n, start + len(k))
            out[start:end] += 0.3 * k[: end - start].astype(np.float32)
    return out.astype(np.float32)
