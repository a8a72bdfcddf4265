"""What every ``Model`` needs to load, wherever it runs (worker, KServe ModelServer, Triton).

Kept apart from the services' settings on purpose: a Triton python backend imports the models
in its own small environment (``triton_models/requirements.txt``), with pydantic-settings but
without the services' dependencies.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[3]
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / "weights"


class ModelSettings(BaseSettings):
    """What every ``Model`` needs to load, wherever it runs."""

    model_config = SettingsConfigDict(env_prefix="TIMBR_", extra="ignore", protected_namespaces=())

    # Install-time model artefacts (``make models``); a deployment may mount them elsewhere.
    models_dir: Path = REPO_ROOT / "var" / "models"
    cpu_threads: int = Field(2, ge=1, le=256)     # intra-op threads of each ONNX / CTranslate2 model
    music_effect_weights: Path = BUNDLED_WEIGHTS / "music_effect.onnx"
    speech_mask_weights: Path = BUNDLED_WEIGHTS / "speech_mask.onnx"

    @field_validator("models_dir", "music_effect_weights", "speech_mask_weights", mode="before")
    @classmethod
    def _empty_is_default(cls, value, info):
        return cls.model_fields[info.field_name].default if value in ("", None) else value


def model_settings() -> ModelSettings:
    """Read when a model is built (cheap), so a Triton backend that sets them first is honoured."""
    return ModelSettings()


def onnx_session(path: Path, built_by: str | None = None):
    """A CPU onnxruntime session on ``path`` with this deployment's thread count. A missing
    graph is a FileNotFoundError naming ``built_by``, the install step that makes it; the model
    client then reports the model as not served here."""
    import onnxruntime as ort

    if not path.exists():
        raise FileNotFoundError(f"{path} is missing" + (f": run `make models` ({built_by} builds it)" if built_by else ""))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = model_settings().cpu_threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
