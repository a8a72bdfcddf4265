"""Models known by name to every ModelClient: name -> "module:Class" (imported lazily)."""

from services.inference.model_client import register_model

# Each entry is owned by the pipeline area that needs it; see each module's docstring.
_MODELS = {
    "speech_enhancer": "services.inference.models.deepfilternet:DeepFilterNet3",
    "music_effect_separator": "services.inference.models.music_effect:MusicEffectSeparator",  # separate
    "speech_mask": "services.inference.models.speech_mask:SpeechMask",  # separate
    "vad_ten": "services.inference.models.vad:TenVad",  # diarize
    "vad_silero": "services.inference.models.vad:SileroVad",  # diarize
    "vad_webrtc": "services.inference.models.vad:WebrtcVad",  # diarize
    "whisper": "services.inference.models.whisper:Whisper",  # diarize
    "speaker_embedding": "services.inference.models.speaker_embedding:SpeakerEmbedding",  # diarize
    "speaker_segmentation": "services.inference.models.segmentation:SpeakerSegmentation",  # diarize
}

for _name, _target in _MODELS.items():
    register_model(_name, _target)
