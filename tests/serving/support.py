"""Helpers for the serving tests and bench: a KServe ModelServer subprocess and example inputs.

The server runs in its own process (``python -m services.inference.model_server``): kserve and
tritonclient.grpc cannot be imported in one process.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tools.devbroker import free_port
from tools.server_process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
SPEECH_TEXT = ("The quick brown fox jumps over the lazy dog. A second sentence follows, "
               "spoken a little later, about the weather and the garden.")


class ModelServerProcess(ServerProcess):
    """``python -m services.inference.model_server`` on free ports; restartable on the same ports."""

    def __init__(self, models: list[str], log_path: Path, **env: str) -> None:
        super().__init__(log_path, free_port(), free_port())
        self.models = models
        self.env = {**os.environ, "TIMBR_MODEL_SERVER_MODELS": ",".join(models),
                    "TIMBR_MODEL_SERVER_HTTP_PORT": str(self.http_port),
                    "TIMBR_MODEL_SERVER_GRPC_PORT": str(self.grpc_port),
                    "TIMBR_MODEL_SERVER_LOG_LEVEL": "WARNING", **env}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "services.inference.model_server"]

    def environment(self) -> dict[str, str]:
        return self.env


BACKENDS = ("kserve", "triton")


def start_server(backend: str, models: list[str], root: Path):
    """The KServe ModelServer or a real Triton serving ``models`` from ``triton_models/``, started."""
    root.mkdir(parents=True, exist_ok=True)
    if backend == "kserve":
        return ModelServerProcess(models, root / "server.log").start()
    from tools.triton import TritonServer, build_repository

    repository = build_repository(root / "repository", models)
    return TritonServer(repository, root / "server.log", free_port(), free_port(), free_port()).start()


def speech(rate: int, text: str = SPEECH_TEXT) -> np.ndarray:
    """espeak-ng speech, mono float32 at ``rate``, peak -6 dBFS."""
    import soundfile as sf
    import soxr

    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (deploy/apt-packages.txt)")
    out = subprocess.run(["espeak-ng", "--stdout", "-s", "150", text], check=True, capture_output=True).stdout
    x, sr = sf.read(io.BytesIO(out), dtype="float32")
    x = soxr.resample(x, sr, rate).astype(np.float32)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def noisy(x: np.ndarray, snr_db: float = 5.0, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(x.size).astype(np.float32)
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


def example_requests(s16: np.ndarray, s48: np.ndarray) -> dict[str, list[tuple[dict, dict | None]]]:
    """Requests per model, shaped as the pipelines send them (see each model's docstring)."""
    dur = s16.size / 16000
    return {
        "speech_enhancer": [({"audio": noisy(s48)}, None), ({"audio": noisy(s48)}, {"atten_lim_db": 12.0})],
        "music_effect_separator": [({"audio": np.stack([noisy(s48, 0.0, 1), noisy(s48, 0.0, 2)])},
                                    {"sample_rate": 48000})],
        "speech_mask": [({"audio": np.stack([noisy(s48, 0.0, 1), noisy(s48, 0.0, 2)]),
                          "enhanced": (0.5 * s48).astype(np.float32)}, None)],
        "vad_ten": [({"audio": s16}, None)],
        "vad_silero": [({"audio": s16}, None)],
        "vad_webrtc": [({"audio": s16}, None)],
        "speaker_segmentation": [({"audio": s16}, None)],
        "speaker_embedding": [({"audio": s16, "windows": np.array([[0.0, 1.5], [1.0, 3.0], [2.0, dur]],
                                                                  np.float32)}, None)],
        "whisper": [({}, {"task": "languages"}),
                    ({"audio": s16}, {"task": "detect_language"}),
                    ({"audio": s16, "clips": np.array([[0.0, dur]], np.float32)},
                     {"task": "transcribe", "language": "en"})],
    }


def close(a, b, tol: float) -> bool:
    """Equal JSON, floats within ``tol``: what the Triton path can promise, since its python
    environment has numpy < 2 (the tests' module docstrings say what moves, and by how much)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tol
    return a == b
