"""The dialogue stem from DeepFilterNet3's output, registered as ``speech_mask``.

DeepFilterNet3 is built to take noise out of speech; asked to take speech out of music and
effects it keeps too little of a recorded voice. Its output ``S`` and the residual ``R = x - S``
give a ratio mask ``r = |S| / (|S| + |R|)`` on a 64 ms STFT; this project's speech mask network
(``training/separation/speech_mask.py``, model card in ``weights/SPEECH_MASK_CARD.md``) bends it
per frame and band into ``sigmoid(a * logit(r) + b)``, ``a`` and ``b`` read off the mixture's,
``S``'s and ``R``'s band energies over the whole window (a BLSTM).

The network alone keeps more of a recorded voice, but on synthetic voices of another make it
lets music in and lost 1.1 dB to DeepFilterNet3 alone (docs/separate.md). So the mask that
ships blends two estimates: DeepFilterNet3's own output (as its complex ratio to the mixture, so
that it carries to every channel), 35 %, and the geometric mean of the network's mask and
``r ** 0.7``, 65 % (``DFN_SHARE``; half and half until 2026-12-05, late). Chosen on the selection
sets: no more mixtures of them below DeepFilterNet3 alone than the half-and-half left. Without
the weights it is half DeepFilterNet3, half ``r ** 0.7``, and ``method`` says which ran.

Contract:

inputs
    ``audio``: float32 ``(frames,)`` or ``(channels, frames)`` at 48 kHz; ``enhanced``: float32
    ``(frames,)``, DeepFilterNet3's output for the channel mean of ``audio``.
parameters
    ``method``: ``auto`` (network, ratio mask if the weights are missing), ``network`` or
    ``ratio``.
outputs
    ``speech``: float32, the shape of ``audio`` (the mask applied to every channel, so stereo
    stems follow the panning); ``method``: JSON string, the method that ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from services.inference.model_client import Model, ModelError, Scalar, Tensors, json_output
from services.inference.models.settings import model_settings, onnx_session
from services.inference.separation.stft import istft, stft

N_FFT, HOP = 3072, 768          # 64 ms / 16 ms at 48 kHz
RATIO_EXPONENT = 0.7            # the ratio mask's exponent; set on the calibration set (docs/separate.md)
# DeepFilterNet3's own output in the blend, by method (docs/separate.md): 0.5 until 2026-12-05,
# late; the network's half chosen again on the corrected calib / tune / synthetic sets
DFN_SHARE = {"network": 0.35, "ratio": 0.5}
MAX_GAIN = 2.0                  # the complex ratio's magnitude bound, where the channel mean nearly cancels


class SpeechMask(Model):
    name = "speech_mask"

    def __init__(self, weights: Path | None = None) -> None:
        super().__init__()
        self.weights = weights or model_settings().speech_mask_weights
        self._session = None

    def load(self) -> None:
        if self.weights.exists():
            self._session = onnx_session(self.weights)
        self.ready = True

    def predict(self, inputs: Tensors, parameters: Mapping[str, Scalar]) -> Tensors:
        if "audio" not in inputs or "enhanced" not in inputs:
            raise ModelError("speech_mask needs 'audio' and 'enhanced' inputs")
        audio = np.asarray(inputs["audio"], dtype=np.float32)
        shape = audio.shape
        if audio.ndim == 1:
            audio = audio[None]
        enhanced = np.asarray(inputs["enhanced"], dtype=np.float32).reshape(-1)
        if audio.ndim != 2 or audio.shape[1] == 0 or enhanced.shape[0] != audio.shape[1]:
            raise ModelError(f"speech_mask takes audio (frames,) or (channels, frames) and enhanced (frames,) "
                             f"of the same length, got {shape} and {enhanced.shape}")
        method = str(parameters.get("method", "auto"))
        if method == "auto":
            method = "network" if self._session is not None else "ratio"
        if method not in ("network", "ratio"):
            raise ModelError(f"unknown method {method!r}")
        if method == "network" and self._session is None:
            raise ModelError(f"speech_mask has no network weights at {self.weights}")
        spec = stft(audio, N_FFT, HOP)                                      # (C, T, F)
        spec_x = spec[0] if audio.shape[0] == 1 else stft(audio.mean(axis=0), N_FFT, HOP)
        spec_s = stft(enhanced, N_FFT, HOP)
        mag_x, mag_s, mag_r = np.abs(spec_x), np.abs(spec_s), np.abs(spec_x - spec_s)  # the STFT is linear
        bend = (mag_s / (mag_s + mag_r + 1e-12)) ** RATIO_EXPONENT
        if method == "network":
            bend = np.sqrt(bend * self._session.run(["mask"], {"mag_x": mag_x, "mag_s": mag_s, "mag_r": mag_r})[0])
        share = DFN_SHARE[method]
        mask = share * dfn_ratio(spec_x, spec_s) + (1 - share) * bend
        speech = istft(spec * mask[None], N_FFT, HOP, audio.shape[1])
        return {"speech": speech.reshape(shape).astype(np.float32), "method": json_output(method)}


def dfn_ratio(spec_x: np.ndarray, spec_s: np.ndarray) -> np.ndarray:
    """DeepFilterNet3's output as a complex mask on the mixture, ``S / X`` (regularised, its
    magnitude at most ``MAX_GAIN``): on a mono input it gives ``S`` back, on stereo it follows the
    panning of each channel."""
    ratio = spec_s * np.conj(spec_x) / (np.abs(spec_x) ** 2 + 1e-12)
    return (ratio * np.minimum(1.0, MAX_GAIN / (np.abs(ratio) + 1e-12))).astype(np.complex64)
