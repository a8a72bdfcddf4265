"""The inference service's settings, from ``TIMBR_*`` environment variables (pydantic-settings).

``WorkerSettings`` is the worker's one settings object; it includes ``ModelBackendSettings``
(how models are reached: in-process or a Triton/KServe endpoint), the only definition of
those fields. The models read their own ``ModelSettings`` (``models/settings.py``: where
artefacts live, CPU threads) in the worker, the KServe ModelServer and Triton alike.
Nothing in the inference service reads ``os.environ`` outside these classes, except the Triton
bootstrap modules (``model_server/triton_entry.py``, ``triton_onnx.py``), which run inside
tritonserver before the project is importable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import CommonSettings, key_values


class ModelBackendSettings(BaseSettings):
    """How a worker reaches its models (``TIMBR_MODEL_*``); the only definition of these fields."""

    model_config = SettingsConfigDict(env_prefix="TIMBR_", extra="ignore", protected_namespaces=())

    model_backend: Literal["inprocess", "remote"] = "inprocess"
    # host:port of the gRPC endpoint (Triton :8001, the KServe ModelServer :8081).
    model_url: str = "127.0.0.1:8001"
    model_ssl: bool = False
    model_timeout_s: float = Field(600.0, gt=0)  # one request, on the server
    model_retries: int = Field(6, ge=0, le=100)  # retries after UNAVAILABLE
    model_retry_backoff_s: float = Field(0.5, gt=0)  # first wait, doubled each retry
    model_retry_max_backoff_s: float = Field(8.0, gt=0)
    model_ready_timeout_s: float = Field(60.0, ge=0)  # start-up wait for the server and models
    # Comma-separated models checked at start-up; empty: the server's own readiness.
    model_startup_models: str = ""
    model_max_message_mb: int = Field(512, ge=4, le=2047)


class WorkerSettings(CommonSettings, ModelBackendSettings):
    model_config = SettingsConfigDict(env_prefix="TIMBR_", extra="ignore", protected_namespaces=())

    # Job types this worker serves; one consumer group per set, so deployments per type scale apart.
    worker_job_types: str = "separate,enhance,diarize"
    # Extra "job_type=module:Class" pipelines, comma separated (plug-ins and tests).
    worker_extra_pipelines: str = ""
    worker_id: str = ""
    workdir: Path = Path("var/work")
    max_attempts: int = 3          # tries of one delivery before the job fails (backoff between)
    max_deliveries: int = 3        # deliveries of one job (worker crashes) before it fails for good
    backoff_base_s: float = 2.0
    heartbeat_s: float = 30.0
    cancel_check_s: float = 5.0
    # How long a job event may wait for the broker's acknowledgement before the producer is
    # rebuilt and the delivery retried.
    event_timeout_s: float = Field(30.0, gt=0)
    # Wait between tries when the jobs service or the broker is away (doubled up to the cap).
    reconnect_backoff_s: float = Field(0.5, gt=0)
    reconnect_max_backoff_s: float = Field(30.0, gt=0)
    # Port of /healthz, /readyz and /metrics; 0 serves none.
    metrics_port: int = 9103
    # OpenMP runtimes (CTranslate2, onnxruntime) spin-wait by default, which starves the worker's
    # other threads on small machines (measured in docs/serving.md); applied before they load.
    omp_wait_policy: str = "PASSIVE"

    @property
    def job_types(self) -> list[str]:
        return sorted({t.strip() for t in self.worker_job_types.split(",") if t.strip()})

    @property
    def extra_pipelines(self) -> dict[str, str]:
        return key_values(self.worker_extra_pipelines)
