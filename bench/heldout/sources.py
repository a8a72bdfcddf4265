"""Real recordings for the held-out evaluation, split by source (Debian package), never by file.

Every package has one role: ``eval`` packages only ever measure a pipeline; ``calib`` packages
may train or calibrate one; ``tune`` packages (music and effects only) choose a constant that
weighs a trained network against a DSP estimate, and nothing trains on them: a network scores
too well on the very recordings it was trained on, so a blend weight chosen on ``calib`` leans
to it. A voice, a recording or a package that tuned a constant therefore never scores it. The audio is fetched on demand with ``apt-get download`` + ``dpkg -x`` (no root,
nothing installed system-wide, nothing committed) into ``var/heldout/``.

    eval voices     asterisk prompts: June fr, IVR ru, Carlo it (core-sounds-fr/-ru/-it), Menardi it,
                    Armelle fr, the Colombian es voice (asterisk-prompt-*)
    calib voices    Allison en + es (asterisk-core-sounds-en/-es); festival voices (festvox-*, built
                    from one real speaker's recordings each, ``SYNTH_VOICES``), installed by apt
                    (training/apt-packages.txt) and synthesized once into ``var/heldout/festival/``
    eval clips      wesnoth music, sounds and ambience; colobot sounds; wesnoth's cries, grunts and
                    laughs (``vocal``: the non-verbal sounds speech-nonlingual takes out)
    calib clips     supertuxkart, extremetuxracer, sound-theme-freedesktop
    tune clips      warzone2100 and lincity-ng music, lincity-ng sounds
    train clips     more recorded scores and game sounds that only train (never calibrate, never
                    measure): flare, freedroidrpg, hedgewars, marsshooter, megaglest (music only),
                    supertux, widelands; fetched by ``make train-separation-recorded`` alone
    train voices    hedgewars' recorded voice packs (the speech mask network only); their lines
                    without words (``vocal``) chose the speech-nonlingual gate's constants
    eval conversation   pyannote.audio's sample: two people on a telephone line, 30 s, with its
                    reference turns (the ``pyannote.audio`` wheel, fetched with ``pip download
                    --no-deps``, never installed or imported); the only recorded conversation here

    voices(role)        utterances with speaker, language and (where the package has it) transcript
    synth_voices(role)  festival utterances (calib only), with their text
    clips(kind, role)   music, effect, ambience, vocal or (train only) voice recordings
    load(path, rate)    mono float32 at ``rate``
    recorded_conversation()  the recorded conversation's audio path and reference turns

``gcompris-qt-data``, named in issue 16 for its voices, holds none: its resource files carry
music and sounds, and GCompris fetches its voices at run time.
"""

from __future__ import annotations

import gzip
import random
import re
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from services.common.audio import read_audio

ROOT = Path(__file__).resolve().parents[2] / "var" / "heldout"
AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".opus", ".flac", ".gsm")
ROLES = ("eval", "calib", "tune", "train")
BENCH_ROLES = ("eval", "calib", "tune")   # what `make heldout-data` fetches; `train` only for training


@dataclass(frozen=True)
class VoiceSource:
    """One recorded speaker: the package holding the audio, the folder under it, the transcripts."""

    name: str
    role: str
    package: str
    folder: str  # under usr/share/asterisk/sounds/
    speaker: str
    lang: str
    gender: str
    transcripts: str | None = None  # package whose core-sounds-XX.txt.gz names each prompt's text


@dataclass(frozen=True)
class ClipSource:
    """Recordings of one kind from one package: music, effect, ambience, voice or vocal (non-verbal)."""

    name: str
    role: str
    kind: str
    package: str
    globs: tuple[str, ...]
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Utterance:
    source: str
    speaker: str
    lang: str
    gender: str
    path: Path
    text: str | None


@dataclass(frozen=True)
class Clip:
    source: str
    path: Path


# Telephone prompts, recorded at 8 kHz by professional voices. Allison speaks both en and es:
# one speaker, so both of her packages are calibration.
VOICES = (
    VoiceSource("june-fr", "eval", "asterisk-core-sounds-fr-wav", "fr_CA_f_June", "june", "fr", "f",
                "asterisk-core-sounds-fr"),
    VoiceSource("ivr-ru", "eval", "asterisk-core-sounds-ru-wav", "ru_RU_f_IvrvoiceRU", "ivr", "ru", "f",
                "asterisk-core-sounds-ru"),
    VoiceSource("carlo-it", "eval", "asterisk-core-sounds-it-wav", "it_IT_m_Carlo", "carlo", "it", "m",
                "asterisk-core-sounds-it"),
    VoiceSource("menardi-it", "eval", "asterisk-prompt-it-menardi-wav", "it_IT_f_Menardi", "menardi", "it", "f"),
    VoiceSource("armelle-fr", "eval", "asterisk-prompt-fr-armelle", "fr", "armelle", "fr", "f"),
    VoiceSource("co-es", "eval", "asterisk-prompt-es-co", "es", "co", "es", "m"),
    VoiceSource("allison-en", "calib", "asterisk-core-sounds-en-wav", "en_US_f_Allison", "allison", "en", "f",
                "asterisk-core-sounds-en"),
    VoiceSource("allison-es", "calib", "asterisk-core-sounds-es-wav", "es_MX_f_Allison", "allison", "es", "f",
                "asterisk-core-sounds-es"),
)



@dataclass(frozen=True)
class SynthVoice:
    """A festival voice (diphones or HTS models from one real speaker), installed by apt."""

    name: str
    role: str
    package: str
    voice: str        # festival's (voice_NAME)
    lang: str
    gender: str
    encoding: str     # the text encoding the voice's lexicon reads


# Calibration only: far more natural than espeak-ng formants, and from packages no eval voice uses.
# The three nsk voices (hi, mr, te) are one speaker: only hi is taken.
SYNTH_VOICES = (
    SynthVoice("kal-en", "calib", "festvox-kallpc16k", "kal_diphone", "en", "m", "latin-1"),
    SynthVoice("ked-en", "calib", "festvox-kdlpc16k", "ked_diphone", "en", "m", "latin-1"),
    SynthVoice("slt-en", "calib", "festvox-us-slt-hts", "cmu_us_slt_arctic_hts", "en", "f", "latin-1"),
    SynthVoice("ona-ca", "calib", "festvox-ca-ona-hts", "upc_ca_ona_hts", "ca", "f", "latin-1"),
    SynthVoice("dita-cs", "calib", "festvox-czech-dita", "czech_dita", "cs", "f", "iso-8859-2"),
    SynthVoice("krb-cs", "calib", "festvox-czech-krb", "czech_krb", "cs", "m", "iso-8859-2"),  # a child
    SynthVoice("machac-cs", "calib", "festvox-czech-machac", "czech_machac", "cs", "m", "iso-8859-2"),
    SynthVoice("ph-cs", "calib", "festvox-czech-ph", "czech_ph", "cs", "m", "iso-8859-2"),
    SynthVoice("lj-fi", "calib", "festvox-suopuhe-lj", "suo_fi_lj_diphone", "fi", "f", "latin-1"),
    SynthVoice("mv-fi", "calib", "festvox-suopuhe-mv", "hy_fi_mv_diphone", "fi", "m", "latin-1"),
    SynthVoice("lp-it", "calib", "festvox-italp16k", "lp_diphone", "it", "f", "latin-1"),
    SynthVoice("pc-it", "calib", "festvox-itapc16k", "pc_diphone", "it", "m", "latin-1"),
    SynthVoice("nsk-hi", "calib", "festvox-hi-nsk", "hindi_NSK_diphone", "hi", "m", "utf-8"),
)
ENGLISH_PROMPTS = 24   # English festival voices read this many of Allison's calib transcripts each

_STK = "usr/share/games/supertuxkart/data"
_HEDGEWARS_VOICES = ("British", "Classic", "Default", "Default_es", "Default_pl", "Default_ru", "Default_uk",
                     "HillBilly", "Mobster", "Pirate", "Russian", "Russian_pl", "Singer", "Surfer")
_HEDGEWARS_SOUNDS = ("Laugh", "Hmm", "Ooff1", "Ooff2", "Ooff3", "Ow1", "Ow2", "Ow3", "Ow4", "PoisonCough", "PoisonMoan",
                     "Jump1", "Jump2", "Jump3")   # the voice packs' lines without words
_WESNOTH = "usr/share/games/wesnoth/1.16/data/core"
_STK_LOOPS = ("rain", "river_loop", "waterfall_loop_2", "lenautile_restaurant", "exotic-birds",
              "exotic-birds_2", "fireworks_show", "static-radio")
CLIPS = (
    ClipSource("wesnoth-music", "eval", "music", "wesnoth-1.16-music", (f"{_WESNOTH}/music/*.ogg",)),
    ClipSource("wesnoth-sounds", "eval", "effect", "wesnoth-1.16-data", (f"{_WESNOTH}/sounds/*.*",)),
    ClipSource("colobot-sounds", "eval", "effect", "colobot-common-sounds", ("usr/share/games/colobot/sounds/*.wav",
                                                                           "**/sounds/*.wav")),
    ClipSource("wesnoth-ambience", "eval", "ambience", "wesnoth-1.16-data", (f"{_WESNOTH}/sounds/ambient/*.ogg",)),
    # Non-verbal vocal sounds (cries, grunts, groans, laughs): what speech-nonlingual takes out
    ClipSource("wesnoth-vocal", "eval", "vocal", "wesnoth-1.16-data",
               (f"{_WESNOTH}/sounds/human-*.ogg", f"{_WESNOTH}/sounds/dwarf-*.*", f"{_WESNOTH}/sounds/elf-hit-*.ogg",
                f"{_WESNOTH}/sounds/groan.wav", "usr/share/games/wesnoth/1.16/data/campaigns/*/sounds/witches-laugh.wav")),
    ClipSource("stk-music", "calib", "music", "supertuxkart-data", (f"{_STK}/music/*.ogg",)),
    ClipSource("etr-music", "calib", "music", "extremetuxracer-data", ("**/music/*.ogg",)),
    ClipSource("stk-sfx", "calib", "effect", "supertuxkart-data", (f"{_STK}/sfx/*.ogg",),
               exclude=_STK_LOOPS),
    ClipSource("etr-sounds", "calib", "effect", "extremetuxracer-data", ("**/sounds/*.wav",)),
    ClipSource("freedesktop", "calib", "effect", "sound-theme-freedesktop", ("**/*.oga",)),
    ClipSource("stk-ambience", "calib", "ambience", "supertuxkart-data",
               tuple(f"{_STK}/sfx/{name}.ogg" for name in _STK_LOOPS)),
    ClipSource("wz2100-music", "tune", "music", "warzone2100-music", ("usr/share/games/warzone2100/music/**/*.opus",)),
    ClipSource("lincity-music", "tune", "music", "lincity-ng-data", ("usr/share/games/lincity-ng/music/**/*.ogg",)),
    ClipSource("lincity-sounds", "tune", "effect", "lincity-ng-data", ("usr/share/games/lincity-ng/sounds/*.wav",)),
    # Training only. Folders of spoken lines (voice packs, unit acknowledgements, NPC barks,
    # in-game comments, announcers) are left out: speech is not an effect.
    ClipSource("flare-music", "train", "music", "flare-game", ("usr/share/games/flare/mods/*/music/*.ogg",)),
    ClipSource("flare-sfx", "train", "effect", "flare-game",
               tuple(f"usr/share/games/flare/mods/*/soundfx/{d}*.ogg"
                     for d in ("", "enemies/", "steps/", "powers/", "environment/", "inventory/"))),
    ClipSource("freedroid-music", "train", "music", "freedroidrpg-data", ("usr/share/freedroidrpg/data/sound/music/*.ogg",)),
    ClipSource("freedroid-sfx", "train", "effect", "freedroidrpg-data",
               tuple(f"usr/share/freedroidrpg/data/sound/effects/{d}*.ogg" for d in ("", "bullets/", "item_sounds/"))),
    ClipSource("hedgewars-music", "train", "music", "hedgewars-data", ("usr/share/games/hedgewars/Data/Music/**/*.ogg",)),
    ClipSource("hedgewars-sfx", "train", "effect", "hedgewars-data", ("usr/share/games/hedgewars/Data/Sounds/*.ogg",),
               exclude=("Yoohoo", "Hellish", "Kiss")),
    # Recorded voices that only train (the speech mask network): hedgewars' voice packs, one actor
    # each, in five languages; the Robot pack is vocoded and left out.
    ClipSource("hedgewars-voices", "train", "voice", "hedgewars-data",
               tuple(f"usr/share/games/hedgewars/Data/Sounds/voices/{pack}/*.ogg" for pack in _HEDGEWARS_VOICES)),
    ClipSource("hedgewars-vocal", "train", "vocal", "hedgewars-data",
               tuple(f"usr/share/games/hedgewars/Data/Sounds/voices/*/{line}.ogg" for line in _HEDGEWARS_SOUNDS)),
    ClipSource("marsshooter-music", "train", "music", "marsshooter-data", ("usr/share/games/marsshooter/audio/music/*.ogg",)),
    ClipSource("megaglest-music", "train", "music", "megaglest-data", ("usr/share/games/megaglest/**/music/*.ogg",)),
    ClipSource("supertux-music", "train", "music", "supertux-data", ("usr/share/games/supertux2/music/**/*.ogg",)),
    ClipSource("supertux-sfx", "train", "effect", "supertux-data", ("usr/share/games/supertux2/sounds/*.*",),
               exclude=("excellent", "welldone", "grunts", "yeti_gna")),
    ClipSource("widelands-music", "train", "music", "widelands-data", ("usr/share/games/widelands/data/music/*.ogg",)),
    ClipSource("widelands-sfx", "train", "effect", "widelands-data", ("usr/share/games/widelands/data/sound/**/*.ogg",)),
)


def packages(roles: tuple[str, ...] = BENCH_ROLES) -> list[str]:
    """Every package the sources of these roles read, with the transcript packages."""
    names = {v.package for v in VOICES if v.role in roles} | {v.transcripts for v in VOICES if v.role in roles and v.transcripts}
    return sorted(names | {c.package for c in CLIPS if c.role in roles})


def ensure(names: list[str] | None = None) -> Path:
    """Download and unpack the packages not yet under ``var/heldout/x`` (idempotent)."""
    debs, extracted = ROOT / "debs", ROOT / "x"
    debs.mkdir(parents=True, exist_ok=True)
    for name in names or packages():
        target = extracted / name
        if target.is_dir() and any(target.iterdir()):
            continue
        subprocess.run(["apt-get", "download", "-q", name], cwd=debs, check=True, capture_output=True)
        deb = next(debs.glob(f"{name}_*.deb"))
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
        deb.unlink()
    return extracted


CONVERSATION_WHEEL = ("pyannote.audio", "3.3.2")   # MIT; its sample/ holds sample.wav and sample.rttm


def recorded_conversation() -> tuple[Path, list[tuple[float, float, str]]]:
    """The recorded two-speaker telephone conversation (16 kHz, 30 s) and its reference turns
    ``(start, end, speaker)``, unpacked once into ``var/heldout/conversation/``."""
    target = ROOT / "conversation"
    wav, rttm = target / "sample.wav", target / "sample.rttm"
    if not (wav.exists() and rttm.exists()):
        name, version = CONVERSATION_WHEEL
        wheels = ROOT / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        f"{name}=={version}", "-d", str(wheels)], check=True, capture_output=True)
        (wheel,) = wheels.glob(f"{name.replace('.', '_')}-{version}-*.whl")
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for path in (wav, rttm):
                path.write_bytes(z.read(f"pyannote/audio/sample/{path.name}"))
        wheel.unlink()
    turns = []
    for line in rttm.read_text().splitlines():
        f = line.split()   # SPEAKER uri channel start duration <NA> <NA> speaker <NA> <NA>
        turns.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return wav, turns


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")


# Prompts of every asterisk voice that are not speech: their transcripts, in each language that
# has one, are only a bracketed description ("[ascending tones]", "[sound of monkeys screaming]").
# Until 2026-12-05 they were drawn as the voice's speech: one eval conversation counted 16 s of
# screaming monkeys as Carlo's turn, and the WER references held "sound of monkeys screaming".
# The French and Italian transcripts lack the beeps, and three voices have no transcripts at all,
# so the names decide for every voice.
NON_SPEECH = frozenset({"ascending-2tone", "descending-2tone", "beep", "beeperr", "tt-monkeys"})
_BRACKETED = re.compile(r"\[[^\]]*\]")


@cache
def _transcripts(package: str) -> dict[str, str]:
    """``name: text`` lines of an asterisk ``core-sounds-XX.txt.gz``, keyed by prompt path."""
    (doc,) = (ensure([package]) / package).glob("usr/share/doc/*/core-sounds-*.txt.gz")
    lines = gzip.decompress(doc.read_bytes()).decode("utf-8-sig").splitlines()
    pairs = (line.split(":", 1) for line in lines if ":" in line and not line.startswith(";"))
    return {name.strip(): text.strip() for name, text in pairs if text.strip()}


def spoken_text(text: str | None) -> str | None:
    """A transcript without its bracketed notes ("at [@]" -> "at"), None where nothing is left
    ("[sound of monkeys screaming]"): a bracket describes a sound or a symbol, not words said."""
    if text is None:
        return None
    words = re.sub(r" ([.,;:!?])", r"\1", " ".join(_BRACKETED.sub(" ", text).split()))
    return words if any(c.isalnum() for c in words) else None


def voices(role: str) -> list[Utterance]:
    """Every spoken utterance of the voices with this role, sorted by source and path: the
    silences, tones, beeps and monkeys of the prompt sets (``NON_SPEECH``) are left out."""
    _check_role(role)
    out = []
    for v in VOICES:
        if v.role != role:
            continue
        root = ensure([v.package]) / v.package / "usr/share/asterisk/sounds" / v.folder
        texts = _transcripts(v.transcripts) if v.transcripts else {}
        for path in sorted(p for p in root.rglob("*") if p.suffix in AUDIO_SUFFIXES):
            key = path.relative_to(root).with_suffix("").as_posix()
            text = spoken_text(texts.get(key))
            if key.startswith("silence/") or key in NON_SPEECH or (key in texts and text is None):
                continue
            out.append(Utterance(v.name, v.speaker, v.lang, v.gender, path, text))
    return out


def _english_texts(voice: str) -> list[str]:
    texts = sorted({t for t in _transcripts("asterisk-core-sounds-en").values() if 30 <= len(t) <= 110})
    return random.Random(zlib.crc32(voice.encode())).sample(texts, ENGLISH_PROMPTS)


def synth_voices(role: str) -> list[Utterance]:
    """Every utterance of the festival voices with this role (none in eval): each voice reads its
    language's sentences (``festival_text``; English voices, Allison's calib transcripts),
    synthesized once with ``text2wave`` into ``var/heldout/festival/<voice>/``."""
    from bench.heldout.festival_text import SENTENCES

    _check_role(role)
    out = []
    for v in SYNTH_VOICES:
        if v.role != role:
            continue
        texts = _english_texts(v.voice) if v.lang == "en" else SENTENCES[v.lang]
        folder = ROOT / "festival" / v.name
        folder.mkdir(parents=True, exist_ok=True)
        for k, text in enumerate(texts):
            path = folder / f"{k:02d}.wav"
            if not path.exists():
                tmp = path.with_suffix(".tmp.wav")
                subprocess.run(["text2wave", "-eval", f"(voice_{v.voice})", "-o", str(tmp)], check=True,
                               input=text.encode(v.encoding, errors="ignore"), capture_output=True)
                tmp.rename(path)
            out.append(Utterance(v.name, v.name, v.lang, v.gender, path, text))
    return out


def clips(kind: str, role: str) -> list[Clip]:
    """Every recording of ``kind`` (music, effect, ambience, voice, vocal) in the packages with this role."""
    _check_role(role)
    out = []
    for c in CLIPS:
        if c.kind != kind or c.role != role:
            continue
        root = ensure([c.package]) / c.package
        paths = {p for pattern in c.globs for p in root.glob(pattern)
                 if p.suffix in AUDIO_SUFFIXES and p.stem not in c.exclude}
        out += [Clip(c.name, p) for p in sorted(paths)]
    return out


def load(path: str | Path, rate: int) -> np.ndarray:
    """Mono float32 at ``rate`` (channels averaged)."""
    audio, _ = read_audio(path, rate)
    return audio.mean(axis=0).astype(np.float32)
