"""Diarize: who spoke when, with a Whisper transcript.

Steps (each reports progress through ``ctx.hook``):

1. ``decode``     the input, mixed to mono and resampled to 16 kHz, streamed block by block
                  into a float32 scratch file that later steps memory-map (bounded memory);
                  each block also denoised by DeepFilterNet3 (``speech_enhancer``, 48 kHz, with
                  ``DENOISE_CONTEXT_S`` of the previous block as warm-up) into a second one;
2. ``vad``        per block, through the chosen detector (``vad_ten`` / ``vad_silero`` /
                  ``vad_webrtc``), then ``speech_regions`` applies threshold, minimum speech and
                  minimum silence exactly, on the input, for Whisper (``speech_regions`` in the
                  result, and the speech the speaker windows cover); the turns cover the speech
                  that the speaker-segmentation model (``speaker_segmentation``) hears in the denoised
                  audio, with the same minimum speech and silence (it misses less of a recorded
                  voice than a VAD, and noise and music beds make far fewer false alarms in
                  denoised audio); where that model is not served, the chosen detector on the
                  denoised audio;
3. ``transcribe`` the file decoded by Whisper as one stream, as Whisper alone decodes it
                  (seeking on after an early stop, conditioned on the previous text), language
                  detected once, as Whisper alone does (the first 30 s) when ``auto``, and the
                  runner-up tried where Whisper doubts the whole decode; words timed after it;
                  hallucinated segments dropped (``diarization.guard``), and those with no word
                  in the speech that the VAD or the segmentation model hears (padded);
                  then every second or more of speech that no word covers (where the decoder
                  jumped ahead) decoded again on its own, unprompted, and its words merged in;
4. ``embed``      CAM++ embeddings of 1.5 s windows over the input's VAD speech, of the input and of the
                  denoised audio, summed: noise lowers a voice's similarity to itself less in
                  the sum than in either (calibrated on the calib split, docs/diarize.md);
5. ``cluster``    spectral clustering: exactly ``num_speakers``, or a count estimated within
                  ``min_speakers``..``max_speakers``;
6. ``write``      speakers per word, cues cut at every speaker change, SRT x2 + JSON, and the
                  pitch-based gender per speaker when asked.

With ``input_srt`` the uploaded cues replace step 3: the speech is the VAD speech inside the
cues (a cue where VAD hears nothing counts whole), their texts and times are kept, and a cue
that two speakers share is split at the change.
"""

from __future__ import annotations

import bisect
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from services.common.audio import InvalidAudio, iter_blocks, probe, resample
from services.common.logging import get_logger
from services.common.params import DiarizeParams
from services.inference.diarization.clustering import SpeakerTimeline, cluster, speaker_windows
from services.inference.diarization.cues import (
    CueStyle,
    assign_words,
    build_cues,
    speaker_names,
    split_cue,
    wrap,
)
from services.inference.diarization.gender import classify, pitch_track
from services.inference.diarization.guard import hallucination_reasons
from services.inference.diarization.srt import Cue, SrtError, format_srt, read_srt
from services.inference.diarization.vad import VadOptions, decode_spans, speech_clips, speech_regions, unheard
from services.inference.errors import InvalidParams, InvalidSrt, ModelNotFound
from services.inference.model_client import parse_json_output
from services.inference.pipeline import JobContext, Pipeline, ResultFile

RATE = 16000
BLOCK_S = 60                    # decode/VAD block; a multiple of every VAD hop
SPAN_S = 600.0                  # file seconds handed to Whisper per request (bounded memory)
PROMPT_CHARS = 200              # previous text carried into the next span
REDECODE_MIN_S = 1.0            # speech left without words at least this long is decoded again
REDECODE_PAD_S = 0.5            # audio either side of it that the second decode hears
EMBED_SPAN_S = 60.0             # audio span per embedding request
DENOISE_RATE = 48000            # speech_enhancer's rate
DENOISE_CONTEXT_S = 1.0         # previous audio each block's denoising starts from (model warm-up)
GENDER_SAMPLE_S = 30.0          # speech per speaker for the pitch statistics
VAD_MODELS = {"ten-vad": "vad_ten", "silero": "vad_silero", "webrtc": "vad_webrtc"}
TURN_MODEL = "speaker_segmentation"
TURN_THRESHOLD = 0.5            # its speech probability; calib split (docs/diarize.md)
TURN_CONTEXT_S = 10.0           # denoised audio before each block that it hears (one model chunk)
LANGUAGE_S = 30                 # audio Whisper tells the language from (its own window)
RETRY_LOGPROB = -1.0            # a decode less sure than this is tried in the runner-up language (Whisper's own bar)

log = get_logger(__name__)
_SENTENCE = re.compile(r"(?<=[.!?…。？！])\s+")


class DiarizePipeline(Pipeline):
    job_type = "diarize"
    steps = ("decode", "vad", "transcribe", "embed", "cluster", "write")

    def run(self, ctx: JobContext[DiarizeParams]) -> list[ResultFile]:
        params = ctx.params
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        srt_cues = self._read_input_srt(ctx)
        language = None if srt_cues is not None else self._check_language(params.language)
        with _timed(timings, "decode_vad", t0):
            # 1-2. input and denoised audio (samples,) 16 kHz; speech spans of each
            audio, clean, regions, turn_regions = self._speech(ctx, params, srt_cues)
        with _timed(timings, "transcribe"):                               # 3. segments with words, file times
            lang_info, segments, dropped = self._transcription(ctx, audio, regions, turn_regions, language, srt_cues)
        with _timed(timings, "embed"):                                    # 4. windows (n, 2) -> (n, 192)
            # over the input's VAD speech, not the turns' wider speech: on the corrected calib split
            # the same DER and 35/40 counts exact against 31/40 (docs/diarize.md, 2026-12-05)
            windows = speaker_windows(regions)
            emb = self._embed(ctx, audio, clean, windows)
        with _timed(timings, "cluster"):                                  # 5. labels (n,) on a timeline
            timeline = self._cluster(ctx, params, windows, emb)
        t = time.perf_counter()                                            # 6. write
        cues, sentence_cues, out_segments, names, words = self._labelled(segments, srt_cues, timeline)
        turns = _turns(turn_regions, timeline)
        speakers = self._speakers(audio, turns, names, params.detect_gender)
        ctx.hook("write", completed=0, total=1)
        result = {
            "duration": round(len(audio) / RATE, 3),
            "language": lang_info["language"],
            "language_probability": lang_info["language_probability"],
            "source": "input_srt" if srt_cues is not None else "whisper",
            "num_speakers": len(speakers),
            "speakers": speakers,
            "turns": [{"start": round(s, 3), "end": round(e, 3), "speaker": names.get(spk)} for s, e, spk in turns],
            "segments": out_segments,
            "words": [_word_out(w, names) for w in words],
            "speech_regions": [[round(s, 3), round(e, 3)] for s, e in regions],
            "dropped_segments": dropped,
            "vad_type": params.vad_type,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
        }
        return self._write(ctx, cues, sentence_cues, result, t0, timings, t)

    # -- stages of run ------------------------------------------------------------------------

    def _speech(self, ctx: JobContext, params: DiarizeParams, srt_cues: list[Cue] | None):
        """Decode with VAD per block: (input audio, denoised audio, the input's speech regions for
        Whisper, the denoised audio's for the speaker windows and turns), both by the VAD
        options (inside the cues, if any)."""
        audio, clean, (probs, hop), (turn_probs, turn_hop, turn_model) = self._decode(ctx, VAD_MODELS[params.vad_type])
        opts = VadOptions(params.vad_threshold, params.vad_min_speech_duration, params.vad_min_silence_duration)
        turn_opts = VadOptions(TURN_THRESHOLD, opts.min_speech, opts.min_silence) if turn_model == TURN_MODEL else opts
        regions, turn_regions = speech_regions(probs, hop, opts), speech_regions(turn_probs, turn_hop, turn_opts)
        if srt_cues is not None:
            # The cues say where words are; VAD trims the silence their loose timing includes.
            duration = len(audio) / RATE
            cue_spans = _merge_spans([(max(0.0, c.start), min(duration, c.end)) for c in srt_cues])
            regions, turn_regions = _intersect(cue_spans, regions), _intersect(cue_spans, turn_regions)
        ctx.hook("vad", regions, completed=1, total=1)
        return audio, clean, regions, turn_regions

    def _transcription(self, ctx: JobContext, audio: np.ndarray, regions: list[tuple[float, float]],
                       turn_regions: list[tuple[float, float]], language: str | None, srt_cues: list[Cue] | None):
        """Language and Whisper segments (none with an input SRT), and the hallucinations dropped.
        Whisper hears the speech of either detector: the segmentation model keeps word edges and
        quiet words that the VAD drops (fewer deletions on the calib split, docs/diarize.md). The
        VAD still decides whether there is speech to transcribe. A told language whose decode
        Whisper doubts (mean log probability under ``RETRY_LOGPROB``) is tried against the runner-up,
        which wins where it is surer and Whisper believes it (above the same bar): noise makes
        Whisper base hear English as Welsh, and music decoded in the runner-up language of a guess
        on noise gives numbers it doubts as much ("x 0.5 x 0.7", -1.3)."""
        lang_info: dict[str, Any] = {"language": None, "language_probability": None}
        segments: list[dict[str, Any]] = []
        dropped: list[dict[str, Any]] = []
        if srt_cues is None and regions:
            lang_info, runner_up = self._language(audio, regions, language)
            spans = _merge_spans(regions + turn_regions)
            segments, dropped = self._transcribe(ctx, audio, spans, lang_info["language"])
            sureness = _logprob(segments + dropped)
            if runner_up and sureness < RETRY_LOGPROB:
                # Whisper doubts its own decode: the language may be wrong (noisy English told as Welsh)
                other_segments, other_dropped = self._transcribe(ctx, audio, spans, runner_up[0])
                other_sureness = _logprob(other_segments + other_dropped)
                log.info("diarize.language_retry", language=lang_info["language"], runner_up=runner_up[0],
                         logprob=round(sureness, 3), runner_up_logprob=round(other_sureness, 3))
                if other_sureness > max(sureness, RETRY_LOGPROB):   # surer, and believed
                    lang_info = {"language": runner_up[0], "language_probability": round(runner_up[1], 4)}
                    segments, dropped = other_segments, other_dropped
            if not segments and language is None:  # a language "detected" on noise means nothing
                lang_info = {"language": None, "language_probability": None}
        ctx.hook("transcribe", completed=1, total=1)
        return lang_info, segments, dropped

    def _cluster(self, ctx: JobContext, params: DiarizeParams, windows: np.ndarray,
                 emb: np.ndarray) -> SpeakerTimeline:
        lo, hi = params.speaker_range()
        timeline = SpeakerTimeline(windows, cluster(emb, min_speakers=lo, max_speakers=hi))
        ctx.hook("cluster", completed=1, total=1)
        return timeline

    def _labelled(self, segments: list[dict[str, Any]], srt_cues: list[Cue] | None, timeline: SpeakerTimeline):
        """Speakers on words and cues: (cues, sentence cues, segments, speaker names, words)."""
        if srt_cues is not None:
            cues, sentence_cues, out_segments, names = self._label_srt(srt_cues, timeline)
            return cues, sentence_cues, out_segments, names, []
        words = sorted((w for seg in segments for w in seg["words"]), key=lambda w: w["start"])  # gaps re-decoded
        assign_words(words, timeline)
        names = speaker_names(words, [int(x) for x in timeline.labels])
        cues = build_cues(words, names, CueStyle(sentences=False))
        sentence_cues = build_cues(words, names, CueStyle(sentences=True))
        return cues, sentence_cues, _speaker_segments(segments, names), names, words

    # -- steps ------------------------------------------------------------------------------

    def _read_input_srt(self, ctx: JobContext) -> list[Cue] | None:
        path = ctx.inputs.get("input_srt")
        if path is None:
            return None
        try:
            return read_srt(Path(path))
        except SrtError as exc:
            raise InvalidSrt(f"input_srt_file_id: {exc}") from exc

    def _check_language(self, language: str) -> str | None:
        if language == "auto":
            return None
        code = language.split("-")[0].lower()
        supported = parse_json_output(self.models.infer("whisper", {}, {"task": "languages"})["result"])
        if code not in supported:
            raise InvalidParams(f"language {language!r} is not supported by Whisper")
        return code

    def _decode(self, ctx: JobContext, vad_model: str):
        """Input and denoised audio (memory-mapped), ``(probs, hop)`` of the VAD on the input, and
        ``(probs, hop, model)`` of the speech for the turns (``TURN_MODEL`` on the denoised audio,
        or ``vad_model`` there where that model is not served)."""
        total = probe(ctx.input_path).duration_s
        probs: list[np.ndarray] = []
        hop = 0.016
        turns = _TurnSpeech(self.models, vad_model)
        done = 0
        tail = np.zeros(0, np.float32)
        with open(ctx.workdir / "audio16k.f32", "wb") as sink, open(ctx.workdir / "clean16k.f32", "wb") as clean_sink:
            for block in iter_blocks(ctx.input_path, BLOCK_S * RATE, RATE):
                mono = block.mean(axis=0).astype(np.float32)     # (frames,)
                clean = denoise(self.models, mono, tail)
                tail = mono[-int(DENOISE_CONTEXT_S * RATE):]
                sink.write(mono.tobytes())
                clean_sink.write(clean.tobytes())
                out = self.models.infer(vad_model, {"audio": mono})
                probs.append(out["probs"])
                hop = float(out["hop_s"][0])
                turns.add(clean)
                done += len(mono)
                ctx.hook("decode", completed=round(done / RATE, 2), total=round(total, 2))
        if done == 0:
            raise InvalidAudio("the file holds no audio samples")
        audio = np.memmap(ctx.workdir / "audio16k.f32", dtype=np.float32, mode="r")
        clean = np.memmap(ctx.workdir / "clean16k.f32", dtype=np.float32, mode="r")
        return audio, clean, (np.concatenate(probs), hop), (np.concatenate(turns.probs), turns.hop, turns.model)

    def _language(self, audio: np.ndarray, regions: list[tuple[float, float]],
                  forced: str | None) -> tuple[dict, tuple[str, float] | None]:
        """Whisper's language, told as Whisper alone tells it: from the first 30 s of the file, or,
        where speech starts later, from the 30 s where it starts. The first 30 s of VAD speech
        (before 2026-12-05) read noise as Welsh in 11 of 40 noisy synthetic English conversations,
        the file's first 30 s in 8, with no loss on the calib voices (docs/diarize.md). With it, the
        runner-up (code, probability) for a decode Whisper doubts."""
        if forced is not None:
            return {"language": forced, "language_probability": None}, None
        start = int(regions[0][0] * RATE) if regions[0][0] >= LANGUAGE_S else 0
        info = parse_json_output(self.models.infer(
            "whisper", {"audio": np.asarray(audio[start:start + LANGUAGE_S * RATE])},
            {"task": "detect_language"})["result"])
        runner_up = tuple(info["top"][1]) if len(info.get("top", [])) > 1 else None
        return {"language": info["language"], "language_probability": round(info["language_probability"], 4)}, runner_up

    def _transcribe(self, ctx: JobContext, audio: np.ndarray, regions: list[tuple[float, float]],
                    language: str) -> tuple[list[dict], list[dict]]:
        """Whisper over the file as Whisper alone decodes it, one stream conditioned on the text
        before it; the audio goes to the model at most ``SPAN_S`` seconds of speech at a time, each
        span prompted with the end of the previous span's text. A segment with no word in the
        padded speech is dropped (``outside_speech``: text invented on music or noise between
        turns). Then the speech it skipped, decoded again on its own."""
        duration = len(audio) / RATE
        clips = speech_clips(regions, duration=duration)
        groups = decode_spans(clips, duration, SPAN_S)
        segments, dropped, prompt = [], [], ""
        for g, (t0, t1) in enumerate(groups):
            out = self._decode_span(audio, t0, t1, language, prompt)
            self._guard(out, segments, dropped, clips)
            prompt = " ".join(x["text"] for x in segments[-8:])[-PROMPT_CHARS:]
            ctx.hook("transcribe", completed=g + 1, total=len(groups))
        found: list[dict] = []
        words = [(w["start"], w["end"]) for x in segments for w in x["words"]]
        for s, e in unheard(regions, words, REDECODE_MIN_S, rejected=[(x["start"], x["end"]) for x in dropped]):
            t0, t1 = max(0.0, s - REDECODE_PAD_S), min(duration, e + REDECODE_PAD_S)
            out = [_inside(x, s, e) for x in self._decode_span(audio, t0, t1, language, "")]
            self._guard([x for x in out if x["words"]], found, dropped)
        return sorted(segments + found, key=lambda x: x["start"]), dropped

    def _decode_span(self, audio: np.ndarray, t0: float, t1: float, language: str, prompt: str) -> list[dict]:
        """Whisper's segments for the audio t0..t1 (file seconds), decoded whole, in file times."""
        rel = np.array([[0.0, t1 - t0]], np.float32)
        out = parse_json_output(self.models.infer(
            "whisper", {"audio": np.asarray(audio[int(t0 * RATE):int(np.ceil(t1 * RATE))]), "clips": rel},
            {"language": language, "prompt": prompt})["result"])
        return [_shift(seg, t0) for seg in out["segments"]]

    @staticmethod
    def _guard(decoded: list[dict], kept: list[dict], dropped: list[dict],
               speech: list[tuple[float, float]] | None = None) -> None:
        for seg, reason in zip(decoded, hallucination_reasons(decoded), strict=True):
            if reason is None and speech is not None and seg["words"] and not _heard_in(seg, speech):
                reason = "outside_speech"
            if reason:  # with the decoder's own confidence: why it was judged unsure
                dropped.append({"start": seg["start"], "end": seg["end"], "text": seg["text"], "reason": reason,
                                **{k: round(seg[k], 3) for k in ("avg_logprob", "no_speech_prob", "compression_ratio")}})
            elif seg["words"]:
                kept.append(seg)

    def _embed(self, ctx: JobContext, audio: np.ndarray, clean: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """L2-normalised sum of the windows' embeddings in the input and in the denoised audio."""
        out = np.zeros((len(windows), 192), np.float32)
        i = 0
        while i < len(windows):
            j = i
            start = windows[i, 0]
            while j < len(windows) and windows[j, 1] - start <= EMBED_SPAN_S:
                j += 1
            j = max(j, i + 1)
            end = float(windows[i:j, 1].max())
            for x in (audio, clean):
                piece = np.asarray(x[int(start * RATE):int(np.ceil(end * RATE))])
                out[i:j] += self.models.infer("speaker_embedding",
                                              {"audio": piece, "windows": windows[i:j] - start})["embeddings"]
            ctx.hook("embed", completed=j, total=len(windows))
            i = j
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-8)

    def _label_srt(self, srt_cues: list[Cue], timeline: SpeakerTimeline):
        parts: list[tuple[Cue, int]] = []
        for cue in srt_cues:
            for part, spk in split_cue(cue, timeline):
                if spk is None or spk < 0:
                    spk = parts[-1][1] if parts else (int(timeline.labels[0]) if len(timeline.labels) else 0)
                parts.append((part, spk))
        order: list[int] = []
        for _, spk in parts:
            if spk not in order:
                order.append(spk)
        for spk in timeline.labels.tolist():
            if spk not in order:
                order.append(spk)
        names = {spk: f"SPEAKER_{i}" for i, spk in enumerate(order, 1)}
        cues = [Cue(c.start, c.end, f"{names[s]}: {c.text}") for c, s in parts]
        sentence_cues = []
        for c, s in parts:
            sentences = [x for x in _SENTENCE.split(" ".join(c.text.split())) if x]
            total = sum(len(x) for x in sentences) or 1
            t = c.start
            for x in sentences:
                end = t + (c.end - c.start) * len(x) / total
                sentence_cues.append(Cue(t, end, wrap(f"{names[s]}: {x}")))
                t = end
        segments = [{"start": round(c.start, 3), "end": round(c.end, 3), "speaker": names[s], "text": c.text,
                     "words": []} for c, s in parts]
        return cues, sentence_cues, segments, names

    def _speakers(self, audio: np.ndarray, turns: list[tuple[float, float, int]], names: dict[int, str],
                  detect_gender: bool) -> list[dict[str, Any]]:
        speech: dict[int, float] = {}
        spans: dict[int, list[tuple[float, float]]] = {}
        for t, end, spk in turns:
            speech[spk] = speech.get(spk, 0.0) + end - t
            spans.setdefault(spk, []).append((t, end))
        out = []
        for spk, name in sorted(names.items(), key=lambda kv: int(kv[1].split("_")[1])):
            item: dict[str, Any] = {"id": name, "speech_time": round(speech.get(spk, 0.0), 3)}
            if detect_gender:
                f0, taken = [], 0.0
                for s, e in spans.get(spk, []):
                    if taken >= GENDER_SAMPLE_S:
                        break
                    e = min(e, s + GENDER_SAMPLE_S - taken)
                    f0.append(pitch_track(np.asarray(audio[int(s * RATE):int(e * RATE)])))
                    taken += e - s
                g = classify(np.concatenate(f0) if f0 else np.zeros(0, np.float32))
                item.update(gender=g.gender, gender_confidence=g.confidence,
                            median_f0_hz=None if g.median_f0 is None else round(g.median_f0, 1))
            out.append(item)
        return out

    def _write(self, ctx, cues, sentence_cues, result, t0, timings, t_write) -> list[ResultFile]:
        srt_path = ctx.workdir / "transcript.srt"
        srt_path.write_text(format_srt(cues), encoding="utf-8")
        sent_path = ctx.workdir / "transcript_sentences.srt"
        sent_path.write_text(format_srt(sentence_cues), encoding="utf-8")
        timings["write"] = time.perf_counter() - t_write
        timings["total"] = time.perf_counter() - t0
        result["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
        result["realtime_factor"] = round(timings["total"] / max(result["duration"], 1e-6), 4)
        json_path = ctx.workdir / "diarization.json"
        json_path.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
        (ctx.workdir / "audio16k.f32").unlink(missing_ok=True)
        (ctx.workdir / "clean16k.f32").unlink(missing_ok=True)
        ctx.hook("write", completed=1, total=1)
        meta = {"speakers": result["num_speakers"], "language": result["language"]}
        return [
            ResultFile("transcript.srt", srt_path, "application/x-subrip", {"format": "timbr", **meta}),
            ResultFile("transcript_sentences.srt", sent_path, "application/x-subrip",
                       {"format": "sentence_split", **meta}),
            ResultFile("diarization.json", json_path, "application/json", meta),
        ]


@contextmanager
def _timed(timings: dict[str, float], name: str, since: float | None = None) -> Iterator[None]:
    start = time.perf_counter() if since is None else since
    yield
    timings[name] = time.perf_counter() - start


# -- helpers ---------------------------------------------------------------------------------

class _TurnSpeech:
    """Speech probabilities for the turns, block by block: ``TURN_MODEL`` on the denoised audio,
    each block heard after the ``TURN_CONTEXT_S`` before it; where that model is not served (it
    says so on the first block) the job's VAD on the denoised audio, for the whole job."""

    def __init__(self, models: Any, vad_model: str) -> None:
        self.models, self.vad_model, self.model = models, vad_model, TURN_MODEL
        self.probs: list[np.ndarray] = []
        self.hop = 0.016
        self._context = np.zeros(0, np.float32)

    def add(self, clean: np.ndarray) -> None:
        if self.model == TURN_MODEL:
            try:
                probs, self.hop = turn_speech(self.models, clean, self._context)
            except ModelNotFound as exc:
                if self.probs:                      # it answered for earlier blocks: a real failure
                    raise
                log.warning("diarize.turns_from_vad", reason=str(exc), vad=self.vad_model)
                self.model = self.vad_model
        if self.model == self.vad_model:
            out = self.models.infer(self.vad_model, {"audio": clean})
            probs, self.hop = out["probs"], float(out["hop_s"][0])
        self.probs.append(np.asarray(probs))
        self._context = np.concatenate([self._context, clean])[-int(TURN_CONTEXT_S * RATE):]


def turn_speech(models: Any, clean: np.ndarray, context: np.ndarray) -> tuple[np.ndarray, float]:
    """``TURN_MODEL``'s speech probabilities over one denoised block and their hop. The model
    hears the block after ``context`` (up to ``TURN_CONTEXT_S`` of the audio before it, so its
    10 s chunks are whole at the block's start); the context's frames are dropped."""
    out = models.infer(TURN_MODEL, {"audio": np.concatenate([context, clean]).astype(np.float32)})
    hop = float(out["hop_s"][0])
    per_frame = round(hop * RATE)                       # samples a frame (160)
    skip = round(len(context) / per_frame)
    return np.asarray(out["probs"])[skip:skip - (-len(clean) // per_frame)], hop


def denoise(models: Any, mono: np.ndarray, context: np.ndarray) -> np.ndarray:
    """DeepFilterNet3 (full strength, at 48 kHz) on ``mono`` (16 kHz), started ``len(context)``
    samples early so the model is warm at the block's first sample; the same length as ``mono``."""
    x = np.concatenate([context, mono]).astype(np.float32)
    up = resample(x[None, :], RATE, DENOISE_RATE)[0]
    out = np.asarray(models.infer("speech_enhancer", {"audio": up})["audio"], np.float32)
    down = resample(out[None, :], DENOISE_RATE, RATE)[0][len(context):len(context) + len(mono)]
    return np.pad(down, (0, len(mono) - len(down))).astype(np.float32)


def _merge_spans(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _turns(regions: list[tuple[float, float]], timeline: SpeakerTimeline) -> list[tuple[float, float, int]]:
    """Speech regions cut at every speaker change: (start, end, label)."""
    out = []
    for s, e in regions:
        points = timeline.change_points(s, e)
        for k, (t, spk) in enumerate(points):
            out.append((t, points[k + 1][0] if k + 1 < len(points) else e, spk))
    return out


def _intersect(spans: list[tuple[float, float]], speech: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The speech inside each span; a span where VAD heard nothing is kept whole."""
    out = []
    for s, e in spans:
        inside = [(max(s, a), min(e, b)) for a, b in speech if min(e, b) > max(s, a)]
        out += inside or [(s, e)]
    return out


def _logprob(segments: list[dict[str, Any]]) -> float:
    """The decoder's mean log probability over decoded segments, kept or dropped, by duration."""
    seconds = np.array([x["end"] - x["start"] for x in segments], np.float64)
    if seconds.sum() <= 0:
        return 0.0
    return float(np.dot(seconds, [x["avg_logprob"] for x in segments]) / seconds.sum())


def _heard_in(seg: dict[str, Any], speech: list[tuple[float, float]]) -> bool:
    """Whether any word of the segment has its middle inside the (padded, sorted, disjoint) speech."""
    starts = [s for s, _ in speech]
    for w in seg["words"]:
        mid = (w["start"] + w["end"]) / 2
        i = bisect.bisect_right(starts, mid) - 1
        if i >= 0 and mid <= speech[i][1]:
            return True
    return False


def _shift(seg: dict[str, Any], shift: float) -> dict[str, Any]:
    seg = dict(seg, start=round(seg["start"] + shift, 3), end=round(seg["end"] + shift, 3))
    seg["words"] = [dict(w, start=round(w["start"] + shift, 3), end=round(w["end"] + shift, 3))
                    for w in seg["words"]]
    return seg


def _inside(seg: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    """The segment cut to the words whose middle lies in start..end (a re-decoded gap's padding
    holds words the first pass already has)."""
    words = [w for w in seg["words"] if start <= (w["start"] + w["end"]) / 2 <= end]
    if not words:
        return dict(seg, words=[], text="")
    return dict(seg, words=words, start=words[0]["start"], end=words[-1]["end"],
                text="".join(w["word"] for w in words).strip())


def _word_out(w: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    return {"start": w["start"], "end": w["end"], "word": w["word"].strip(),
            "probability": round(w["probability"], 3), "speaker": names.get(w["speaker"])}


def _speaker_segments(segments: list[dict[str, Any]], names: dict[int, str]) -> list[dict[str, Any]]:
    """Whisper segments split wherever the speaker changes inside them."""
    out = []
    for seg in segments:
        run: list[dict[str, Any]] = []
        for w in seg["words"] + [None]:
            if run and (w is None or w["speaker"] != run[-1]["speaker"]):
                out.append({"start": run[0]["start"], "end": run[-1]["end"], "speaker": names[run[0]["speaker"]],
                            "text": "".join(x["word"] for x in run).strip(),
                            "avg_logprob": round(seg["avg_logprob"], 3),
                            "words": [_word_out(x, names) for x in run]})
                run = []
            if w is not None:
                run.append(w)
    return out
