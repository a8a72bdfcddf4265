from __future__ import annotations

from pydantic import model_validator

from services.common.settings import CommonSettings, refuse_default_credentials


class BillingSettings(CommonSettings):
    database_url: str = "sqlite:///var/billing.db"
    grpc_listen: str = "127.0.0.1:50051"
    metrics_port: int = 9101
    outbox_poll_s: float = 0.2  # how often pending credit events are looked for
    # Credit events already published are deleted this long after (by the outbox publisher).
    outbox_keep_s: float = 6 * 3600.0

    @model_validator(mode="after")
    def _refuse_default_credentials(self) -> BillingSettings:
        refuse_default_credentials(self.env, self.database_url)
        return self
