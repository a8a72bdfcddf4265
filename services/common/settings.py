"""Settings shared by every service, from ``TIMBR_*`` environment variables (pydantic-settings).

Each service extends ``CommonSettings`` in its own ``config.py``. Outside ``env=local``
start-up refuses the public development signing secret, a missing or short service token
(internal gRPC calls are authenticated with it) and, for billing and jobs, a database URL with
default credentials.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

DEV_SIGNING_SECRET = "dev-only-signing-secret-change-me"
MIN_SECRET_CHARS = 32
# Passwords of examples and chart defaults ("timbr:timbr@postgresql"): public, so refused.
DEFAULT_DB_PASSWORDS = frozenset({"timbr", "postgres", "password", "changeme", "secret", "admin"})

TOPIC_REQUESTED = "audio.jobs.requested"
TOPIC_EVENTS = "audio.jobs.events"  # public: what the jobs service decided happened to a job
TOPIC_REPORTS = "audio.jobs.reports"  # internal: what the workers report, read by the jobs service only
TOPIC_DLQ = "audio.jobs.requested.dlq"
TOPIC_CREDITS = "billing.credits.events"


def key_values(text: str) -> dict[str, str]:
    """``"a=x:Y, b=z:W"`` -> ``{"a": "x:Y", "b": "z:W"}``: the plug-in lists of the settings."""
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {k.strip(): v.strip() for k, v in pairs}


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
    # An emulator or private endpoint for the GCS API and the signed URLs (empty: Google's).
    gcs_endpoint: str = ""
    # Without a key file (Workload Identity) URLs are signed through IAM signBlob as this
    # service account (empty: the one the credentials belong to).
    gcs_signing_email: str = ""
    gcs_iam_endpoint: str = "https://iamcredentials.googleapis.com"
    signing_secret: str = DEV_SIGNING_SECRET
    public_url: str = "http://127.0.0.1:8000"
    signed_url_ttl_s: int = 3600
    grpc_timeout_s: float = 10.0
    # Webhooks to loopback, link-local and private addresses: refused unless this is on
    # (``make run`` turns it on so that a receiver on 127.0.0.1 works; production keeps it off).
    webhook_allow_private: bool = False
    # Shared by the services (a Kubernetes Secret): billing and jobs refuse gRPC calls without
    # it, every client sends it. Empty (allowed in env=local only): no check.
    service_token: str = ""

    @model_validator(mode="after")
    def _refuse_dev_secret(self) -> CommonSettings:
        if self.env != "local" and self.signing_secret == DEV_SIGNING_SECRET:
            raise ValueError("TIMBR_SIGNING_SECRET must be set outside env=local")
        if self.env != "local" and len(self.service_token) < MIN_SECRET_CHARS:
            raise ValueError(f"TIMBR_SERVICE_TOKEN ({MIN_SECRET_CHARS}+ characters) must be set outside env=local")
        if self.storage_backend == "gcs" and not self.gcs_bucket:
            raise ValueError("TIMBR_GCS_BUCKET is required with TIMBR_STORAGE_BACKEND=gcs")
        return self


def refuse_default_credentials(env: str, database_url: str) -> None:
    """Outside env=local, a database URL with a well-known password (the chart's default
    ``timbr:timbr``, ``postgres``...) or the user name as password is refused."""
    if env == "local" or database_url.startswith("sqlite"):
        return
    url = make_url(database_url)
    if url.password is not None and (url.password in DEFAULT_DB_PASSWORDS or url.password == url.username):
        raise ValueError("TIMBR_DATABASE_URL uses default credentials; set a real password outside env=local")
