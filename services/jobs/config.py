from __future__ import annotations

from pydantic import model_validator

from services.common.settings import CommonSettings, refuse_default_credentials


class JobsSettings(CommonSettings):
    database_url: str = "sqlite:///var/jobs.db"
    grpc_listen: str = "127.0.0.1:50052"
    metrics_port: int = 9102
    consumer_group: str = "timbr-jobs"
    outbox_poll_s: float = 0.2
    # A running job with no event for this long is failed and its credits released: workers send
    # a heartbeat every TIMBR_HEARTBEAT_S (30 s), and a dead worker's job goes to another worker
    # within a consumer-group rebalance (seconds). A job nobody runs any more ends within
    # stale_running_s + sweep_interval_s (2.5 minutes by default).
    stale_running_s: float = 120.0
    stale_queued_s: float = 86400.0
    sweep_interval_s: float = 30.0
    # How often the credits of ended jobs that Billing did not acknowledge are retried.
    settle_interval_s: float = 2.0
    # Uploads and results are removed this long after upload / job end (accounts may override).
    retention_days: float = 7.0
    retention_sweep_interval_s: float = 300.0
    # Outbox rows already published are deleted this long after (by the retention sweeper).
    outbox_keep_s: float = 6 * 3600.0
    # How often the work queue's lag per worker group and partition is read from the broker.
    queue_lag_interval_s: float = 15.0

    @model_validator(mode="after")
    def _refuse_default_credentials(self) -> JobsSettings:
        refuse_default_credentials(self.env, self.database_url)
        return self
