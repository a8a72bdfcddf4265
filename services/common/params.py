"""The job parameters of the public API: names, defaults and ranges are the contract.

The gateway validates request bodies with these models; the worker parses a job's parameters
once into the same model (``PARAMS_BY_JOB_TYPE``, in ``services.inference.pipeline.parse_params``)
and hands it to the pipeline as ``ctx.params``, so both ends agree on every default.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.audio import FORMAT_BIT_DEPTHS

JobType = Literal["separate", "enhance", "diarize"]


class SeparationType(StrEnum):
    dialogue_me = "dialogue-me"
    dialogue_music_effect = "dialogue-music-effect"
    speech_nonlingual = "speech-nonlingual"


STEMS: dict[SeparationType, tuple[str, ...]] = {
    SeparationType.dialogue_me: ("speech", "me"),
    SeparationType.dialogue_music_effect: ("speech", "music", "effect"),
    SeparationType.speech_nonlingual: ("speech", "nonlingual"),
}


class OutputFormat(StrEnum):
    wav = "wav"
    flac = "flac"
    mp3 = "mp3"
    ogg = "ogg"


class EqPreset(StrEnum):
    none = "none"
    balanced = "balanced"
    vocal = "vocal"
    bass_boost = "bass_boost"


class TranscribeModel(StrEnum):
    whisper = "whisper"


class VadType(StrEnum):
    ten_vad = "ten-vad"
    silero = "silero"
    webrtc = "webrtc"


FileId = Annotated[str, Field(min_length=1, max_length=64, description="File ID from POST /v1/upload")]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True, validate_default=True)


class _AudioOutputParams(_Params):
    """Parameters of a job that writes audio: its ``bit_depth`` must fit its ``output_format``."""

    @model_validator(mode="after")
    def _depth_fits_format(self) -> _AudioOutputParams:
        fmt, depth = self.output_format, self.bit_depth
        if depth not in FORMAT_BIT_DEPTHS[fmt]:
            allowed = ", ".join(map(str, FORMAT_BIT_DEPTHS[fmt]))
            raise ValueError(f"output_format {fmt} cannot hold bit_depth {depth} (allowed: {allowed})")
        return self


class SeparateParams(_AudioOutputParams):
    """Split audio into stems."""

    file_id: FileId
    separation_type: SeparationType = Field(
        SeparationType.dialogue_me,
        description="dialogue-me: speech, me (music+effects); dialogue-music-effect: speech, music, "
        "effect; speech-nonlingual: speech (where words are spoken), nonlingual (everything else, "
        "including laughs, breaths, hums and shouts without words)",
    )
    sample_rate: int = Field(48000, ge=8000, le=192000, description="Output sample rate in Hz")
    bit_depth: Literal[8, 16, 24, 32] = Field(16, description="Output bit depth (32 = float WAV)")
    output_format: OutputFormat = Field(OutputFormat.wav, description="Output audio format")


class EnhanceParams(_AudioOutputParams):
    """Denoise, EQ, compress and loudness-normalise."""

    file_id: FileId
    denoise: bool = Field(True, description="Apply noise reduction")
    noise_reduction: float = Field(0.5, ge=0.0, le=1.0, description="Noise reduction strength (0.0-1.0)")
    eq_preset: EqPreset = Field(EqPreset.balanced, description="EQ preset to apply")
    compression: bool = Field(False, description="Apply dynamic range compression")
    normalize: bool = Field(True, description="Normalize loudness (ITU-R BS.1770, true-peak safe)")
    target_lufs: float = Field(-16.0, ge=-31.0, le=-5.0, description="Loudness target when normalize is on")
    output_format: OutputFormat = Field(OutputFormat.wav, description="Output audio format")
    sample_rate: int | None = Field(None, ge=8000, le=192000, description="Output rate; default: the input's")
    bit_depth: Literal[8, 16, 24, 32] = Field(16, description="Output bit depth (32 = float WAV)")


class DiarizeParams(_Params):
    """Who spoke when, with a Whisper transcript, as SRT and JSON."""

    file_id: FileId
    num_speakers: int | None = Field(None, ge=1, le=20, description="Exact number of speakers; null estimates it")
    min_speakers: int | None = Field(None, ge=1, le=20, description="Lower bound on the estimated count")
    max_speakers: int | None = Field(None, ge=1, le=20, description="Upper bound on the estimated count")
    language: str = Field("auto", min_length=2, max_length=8, pattern=r"^(auto|[a-z]{2,3}(-[A-Za-z]{2,4})?)$",
                          description="Language code (e.g. 'en', 'ko', 'ja') or 'auto' for detection")
    transcribe_model: TranscribeModel = Field(TranscribeModel.whisper, description="Transcription model")
    vad_type: VadType = Field(VadType.ten_vad, description="Voice activity detector")
    vad_threshold: float = Field(0.5, ge=0.0, le=1.0, description="VAD speech probability threshold")
    vad_min_speech_duration: float = Field(0.1, ge=0.0, le=5.0, description="Minimum speech duration (s)")
    vad_min_silence_duration: float = Field(0.1, ge=0.0, le=5.0, description="Minimum silence duration (s)")
    detect_gender: bool = Field(False, description="Estimate each speaker's gender")
    input_srt_file_id: str | None = Field(None, min_length=1, max_length=64,
                                          description="Uploaded SRT to label with speakers instead of transcribing")

    @model_validator(mode="after")
    def _speaker_bounds(self) -> DiarizeParams:
        lo, hi, n = self.min_speakers, self.max_speakers, self.num_speakers
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_speakers ({lo}) is above max_speakers ({hi})")
        if n is not None and ((lo is not None and n < lo) or (hi is not None and n > hi)):
            raise ValueError(f"num_speakers ({n}) is outside min_speakers..max_speakers")
        return self

    def speaker_range(self) -> tuple[int, int]:
        """(lowest, highest) speaker count the clustering may choose."""
        if self.num_speakers is not None:
            return self.num_speakers, self.num_speakers
        return self.min_speakers or 1, self.max_speakers or 20


PARAMS_BY_JOB_TYPE: dict[str, type[_Params]] = {
    "separate": SeparateParams,
    "enhance": EnhanceParams,
    "diarize": DiarizeParams,
}
