from services.common.settings import CommonSettings


class WebhookSettings(CommonSettings):
    # The jobs database: deliveries and attempts are kept beside the jobs they announce.
    database_url: str = "sqlite:///var/jobs.db"
    metrics_port: int = 9104
    consumer_group: str = "timbr-webhooks"
    timeout_s: float = 10.0             # one attempt: connect + response
    backoff_base_s: float = 5.0         # first retry after 2.5..5 s, then doubling (with jitter)
    backoff_max_s: float = 3600.0       # at most an hour between attempts
    max_age_s: float = 86400.0          # retried for 24 h after the job ended, then given up
    concurrency: int = 8                # deliveries in flight at once (a slow receiver holds one)
    poll_s: float = 0.5
    retention_days: float = 7.0         # as the jobs service: the document shows results_expire_at
    viewer_url_ttl_s: int = 7 * 24 * 3600  # as the gateway's: the document's viewer_url
