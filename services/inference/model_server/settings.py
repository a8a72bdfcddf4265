"""Model server settings, from ``TIMBR_MODEL_SERVER_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import key_values


class ModelServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIMBR_MODEL_SERVER_", extra="ignore")

    http_port: int = Field(8080, ge=1, le=65535)
    grpc_port: int = Field(8081, ge=1, le=65535)
    # Comma-separated model names; empty serves every registered model.
    models: str = ""
    # Extra "name=module:Class" models, comma separated (plug-ins and tests), added to the registry.
    extra_models: str = ""
    # Requests one model runs at once (each in its own thread); more queue. 1 suits 2 cores.
    max_concurrency: int = Field(1, ge=1, le=64)
    grpc_threads: int = Field(4, ge=1, le=64)
    # gRPC message limit: a 10-minute 48 kHz float32 chunk is 115 MB.
    grpc_max_message_mb: int = Field(512, ge=4, le=2047)
    # Exit (non-zero) when a model fails to load, so the orchestrator restarts or flags it.
    exit_on_load_failure: bool = True
    log_level: str = "INFO"
    # OpenMP runtimes (CTranslate2, onnxruntime) spin-wait by default; beside the server's
    # event loop and gRPC threads on few cores that made Whisper 3-6x slower. Measured in
    # docs/serving.md. Applied unless OMP_WAIT_POLICY is already set.
    omp_wait_policy: str = "PASSIVE"

    @field_validator("models")
    @classmethod
    def _strip(cls, value: str) -> str:
        return ",".join(part.strip() for part in value.split(",") if part.strip())

    @property
    def extra(self) -> dict[str, str]:
        return key_values(self.extra_models)

    def model_names(self, registered: list[str]) -> list[str]:
        """The models to serve: the configured list (checked) or every registered one."""
        if not self.models:
            return sorted(registered)
        names = self.models.split(",")
        unknown = [n for n in names if n not in registered]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; registered: {sorted(registered)}")
        return names
