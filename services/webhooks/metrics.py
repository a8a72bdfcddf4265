"""Webhook dispatcher metrics, declared once, on a registry of their own.

The dispatcher imports services.jobs (the job document, its Loop), whose metrics land on the
default registry; serving that one would show the jobs service's metrics (at zero) as the
dispatcher's. ``REGISTRY`` holds only these and the process's own.
"""

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

ATTEMPTS = Counter("timbr_webhook_attempts_total", "Webhook delivery attempts by outcome",
                   ["outcome"], registry=REGISTRY)  # delivered | retry | failed
ATTEMPT_SECONDS = Histogram("timbr_webhook_attempt_seconds", "Duration of one delivery attempt",
                            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=REGISTRY)
DELIVERIES = Counter("timbr_webhook_deliveries_total", "Deliveries created, by event", ["event"],
                     registry=REGISTRY)
PENDING = Gauge("timbr_webhook_pending", "Deliveries not yet delivered nor given up", registry=REGISTRY)
LAG = Gauge("timbr_webhook_consumer_lag", "Events behind the end of audio.jobs.events", registry=REGISTRY)

for _outcome in ("delivered", "retry", "failed"):  # exported from the start, at zero
    ATTEMPTS.labels(_outcome)
for _event in ("completed", "failed", "cancelled", "timed_out"):
    DELIVERIES.labels(_event)
