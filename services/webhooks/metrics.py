"""Webhook dispatcher metrics, declared once."""

from prometheus_client import Counter, Gauge, Histogram

ATTEMPTS = Counter("timbr_webhook_attempts_total", "Webhook delivery attempts by outcome",
                   ["outcome"])  # delivered | retry | failed
ATTEMPT_SECONDS = Histogram("timbr_webhook_attempt_seconds", "Duration of one delivery attempt",
                            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
DELIVERIES = Counter("timbr_webhook_deliveries_total", "Deliveries created, by event", ["event"])
PENDING = Gauge("timbr_webhook_pending", "Deliveries not yet delivered nor given up")
LAG = Gauge("timbr_webhook_consumer_lag", "Events behind the end of audio.jobs.events")

for _outcome in ("delivered", "retry", "failed"):  # exported from the start, at zero
    ATTEMPTS.labels(_outcome)
for _event in ("completed", "failed", "cancelled", "timed_out"):
    DELIVERIES.labels(_event)
