"""Settings shared by every service, from ``TIMBR_*`` environment variables (pydantic-settings).

Each service extends ``CommonSettings`` in its own ``config.py``. Outside ``env=local`` the
default signing secret is refused at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SIGNING_SECRET = "dev-only-signing-secret-change-me"

TOPIC_REQUESTED = "audio.jobs.requested"
TOPIC_EVENTS = "audio.jobs.events"
TOPIC_DLQ = "audio.jobs.requested.dlq"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIMBR_", extra="ignore")

    env: Literal["local", "production"] = "local"
    log_level: str = "INFO"
    kafka_bootstrap: str = "127.0.0.1:9092"
    billing_addr: str = "127.0.0.1:50051"
    jobs_addr: str = "127.0.0.1:50052"
    storage_backend: Literal["local", "gcs"] = "local"
    storage_root: Path = Path("var/storage")
    gcs_bucket: str = ""
    signing_secret: str = DEV_SIGNING_SECRET
    public_url: str = "http://127.0.0.1:8000"
    signed_url_ttl_s: int = 3600
    grpc_timeout_s: float = 10.0
    # Webhooks to loopback, link-local and private addresses: refused unless this is on
    # (``make run`` turns it on so that a receiver on 127.0.0.1 works; production keeps it off).
    webhook_allow_private: bool = False

    @model_validator(mode="after")
    def _refuse_dev_secret(self) -> CommonSettings:
        if self.env != "local" and self.signing_secret == DEV_SIGNING_SECRET:
            raise ValueError("TIMBR_SIGNING_SECRET must be set outside env=local")
        if self.storage_backend == "gcs" and not self.gcs_bucket:
            raise ValueError("TIMBR_GCS_BUCKET is required with TIMBR_STORAGE_BACKEND=gcs")
        return self
