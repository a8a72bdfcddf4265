"""Music / effect separation of a non-speech residual, registered as ``music_effect_separator``.

A mask network trained by this project (``training/separation/``, model card in
``weights/MODEL_CARD.md``) run with onnxruntime from the committed ONNX weights
(``weights/music_effect.onnx``). If the weights are missing it falls back to the DSP baseline
(``services.inference.separation.baseline``), and says so in its ``method`` output.

Contract:

inputs
    ``audio``: float32 ``(frames,)`` or ``(channels, frames)`` at ``sample_rate``.
parameters
    ``sample_rate`` (int, default 48000); ``method``: ``auto`` (network, baseline if the
    weights are missing), ``network`` or ``baseline``.
outputs
    ``music``: float32, the input's shape; ``effect``: ``audio - music`` (so the two always
    sum to the input); ``method``: JSON string, ``"network"`` or ``"baseline"``.

How: the mask is estimated once, on the channel mean resampled to 16 kHz (STFT 512 / 128,
the training grid), then carried over to each channel's own STFT at the input rate (window
32 ms, hop 8 ms: the same frame times; above 8 kHz each frame takes its 4-8 kHz mean mask).
Stateless; callers cut long audio into chunks (the pipeline uses 20 s with overlap).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from services.common.audio import resample
from services.inference.model_client import Model, ModelError, Scalar, Tensors, json_output
from services.inference.models.settings import BUNDLED_WEIGHTS, model_settings
from services.inference.separation.baseline import music_mask as baseline_mask
from services.inference.separation.stft import istft, stft, transfer_mask

WEIGHTS = BUNDLED_WEIGHTS / "music_effect.onnx"
NET_RATE, NET_FFT, NET_HOP = 16000, 512, 128
WINDOW_S = 0.032


class MusicEffectSeparator(Model):
    name = "music_effect_separator"

    def __init__(self, weights: Path | None = None) -> None:
        super().__init__()
        self.weights = weights or model_settings().music_effect_weights
        self._session = None

    def load(self) -> None:
        if self.weights.exists():
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = model_settings().cpu_threads
            opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(self.weights), opts, providers=["CPUExecutionProvider"])
        self.ready = True

    @property
    def has_network(self) -> bool:
        return self._session is not None

    def predict(self, inputs: Tensors, parameters: Mapping[str, Scalar]) -> Tensors:
        if "audio" not in inputs:
            raise ModelError("music_effect_separator needs an 'audio' input")
        audio = np.asarray(inputs["audio"], dtype=np.float32)
        shape = audio.shape
        if audio.ndim == 1:
            audio = audio[None]
        if audio.ndim != 2 or audio.shape[1] == 0:
            raise ModelError(f"music_effect_separator takes (frames,) or (channels, frames), got {shape}")
        rate = int(parameters.get("sample_rate", 48000))
        method = str(parameters.get("method", "auto"))
        if method == "auto":
            method = "network" if self.has_network else "baseline"
        if method == "network" and not self.has_network:
            raise ModelError(f"music_effect_separator has no network weights at {self.weights}")
        if method not in ("network", "baseline"):
            raise ModelError(f"unknown method {method!r}")

        mono16 = resample(audio.mean(axis=0, keepdims=True), rate, NET_RATE)[0]
        mag = np.abs(stft(mono16, NET_FFT, NET_HOP))                      # (T16, 257)
        if method == "network":
            mask16 = self._session.run(["mask"], {"magnitude": mag[None].astype(np.float32)})[0][0]
        else:
            mask16 = baseline_mask(mag)
        n_fft = 2 * round(WINDOW_S * rate / 2)
        hop = n_fft // 4
        spec = stft(audio, n_fft, hop)                                    # (C, T, F)
        mask = transfer_mask(mask16, NET_RATE, NET_HOP, NET_FFT, spec.shape[1], rate, hop, n_fft)
        music = istft(spec * mask[None], n_fft, hop, audio.shape[1])      # (C, N)
        effect = audio - music
        return {"music": music.reshape(shape), "effect": effect.reshape(shape),
                "method": json_output(method)}
