from services.common.settings import CommonSettings


class WebhookSettings(CommonSettings):
    # The jobs database: deliveries and attempts are kept beside the jobs they announce.
    database_url: str = "sqlite:///var/jobs.db"
    metrics_port: int = 9104
    consumer_group: str = "timbr-webhooks"
    # TIMBR_WEBHOOK_*: one attempt's limit (connect + response), the first retry's delay (2.5..5 s,
    # then doubling, with jitter), the longest delay, how long after the job's end it is retried,
    # and how many deliveries are in flight at once (a slow receiver holds one).
    webhook_timeout_s: float = 10.0
    webhook_backoff_base_s: float = 5.0
    webhook_backoff_max_s: float = 3600.0
    webhook_max_age_s: float = 86400.0
    webhook_concurrency: int = 8
    poll_s: float = 0.5
    retention_days: float = 7.0         # as the jobs service: the document shows results_expire_at
    viewer_url_ttl_s: int = 7 * 24 * 3600  # as the gateway's: the document's viewer_url
