"""Voice activity detectors: frame-level speech probabilities at 16 kHz.

Three detectors, one contract, so the diarize pipeline applies ``vad_threshold``,
``vad_min_speech_duration`` and ``vad_min_silence_duration`` the same way whatever the
detector (``services.inference.diarization.vad.speech_regions``):

    inputs  {"audio": float32 (samples,) mono 16 kHz}
    outputs {"probs": float32 (frames,) speech probability per frame,
             "hop_s": float32 (1,) frame hop in seconds}

- ``vad_ten``: TEN VAD (``ten-vad`` wheel, needs Debian ``libc++1``), 16 ms hops.
- ``vad_silero``: Silero VAD v6, the ONNX graph bundled in ``faster-whisper``, 32 ms hops.
- ``vad_webrtc``: WebRTC VAD (``webrtcvad-wheels``), 30 ms frames. It gives a yes/no per
  aggressiveness mode, not a probability: the probability is the share of its four modes
  (0..3) that call the frame speech, so a threshold of 0.5 means "modes 0 and 1 agree".

Each request is independent (a fresh detector state), so a long file is sent block by block.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from services.inference.model_client import Model, ModelError, Scalar, Tensors

RATE = 16000


def mono16k(inputs: Tensors) -> np.ndarray:
    """The ``audio`` input as float32 samples: 1-D, mono 16 kHz (the contract of every model that
    reads speech at 16 kHz), or a ModelError."""
    audio = inputs.get("audio")
    if audio is None or audio.ndim != 1:
        raise ModelError("input 'audio' must be a 1-D float32 array of 16 kHz samples")
    return np.asarray(audio, dtype=np.float32)


def _out(probs: np.ndarray, hop_s: float) -> Tensors:
    return {"probs": probs.astype(np.float32), "hop_s": np.array([hop_s], np.float32)}


class TenVad(Model):
    name = "vad_ten"
    hop = 256

    def load(self) -> None:
        from ten_vad import TenVad as _TenVad

        self._cls = _TenVad
        self.ready = True

    def predict(self, inputs: Tensors, parameters: Mapping[str, Scalar]) -> Tensors:
        audio = mono16k(inputs)
        n = len(audio) // self.hop
        pcm = (np.clip(audio[: n * self.hop], -1.0, 1.0) * 32767.0).astype(np.int16)
        vad = self._cls(self.hop, 0.5)  # its own threshold is unused: we read the probability
        probs = np.empty(n, np.float32)
        for i in range(n):
            probs[i], _ = vad.process(np.ascontiguousarray(pcm[i * self.hop:(i + 1) * self.hop]))
        return _out(probs, self.hop / RATE)


class SileroVad(Model):
    name = "vad_silero"
    hop = 512

    def load(self) -> None:
        from faster_whisper.vad import get_vad_model

        self._model = get_vad_model()
        self.ready = True

    def predict(self, inputs: Tensors, parameters: Mapping[str, Scalar]) -> Tensors:
        audio = mono16k(inputs)
        n = len(audio) // self.hop
        if n == 0:
            return _out(np.zeros(0, np.float32), self.hop / RATE)
        probs = self._model(np.ascontiguousarray(audio[: n * self.hop])).reshape(-1)
        return _out(probs, self.hop / RATE)


class WebrtcVad(Model):
    name = "vad_webrtc"
    hop = 480  # 30 ms

    def load(self) -> None:
        import webrtcvad

        self._vad_class = webrtcvad.Vad
        self.ready = True

    def predict(self, inputs: Tensors, parameters: Mapping[str, Scalar]) -> Tensors:
        audio = mono16k(inputs)
        n = len(audio) // self.hop
        pcm = (np.clip(audio[: n * self.hop], -1.0, 1.0) * 32767.0).astype("<i2")
        probs = np.empty(n, np.float32)
        vads = [self._vad_class(mode) for mode in range(4)]  # fresh state: requests stay independent
        for i in range(n):
            frame = pcm[i * self.hop:(i + 1) * self.hop].tobytes()
            probs[i] = sum(v.is_speech(frame, RATE) for v in vads) / 4.0
        return _out(probs, self.hop / RATE)
