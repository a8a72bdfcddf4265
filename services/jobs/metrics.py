"""Jobs metrics, declared once."""

from prometheus_client import Counter, Gauge, Histogram

JOBS = Counter("timbr_jobs_total", "Job state changes", ["job_type", "status"])
JOB_DURATION = Histogram("timbr_job_duration_seconds", "Creation to end state", ["job_type", "status"],
                         buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200))
OUTBOX_PENDING = Gauge("timbr_outbox_pending", "Outbox messages not yet published")
CONSUMER_LAG = Gauge("timbr_kafka_consumer_lag", "Messages behind the end of the topic", ["topic"])
SETTLEMENTS_PENDING = Gauge("timbr_credit_settlements_pending",
                            "Ended jobs whose confirm or release Billing has not yet acknowledged")
OBJECTS_REMOVED = Counter("timbr_objects_removed_total", "Uploads and job results removed from storage",
                          ["kind", "reason"])
for _kind in ("upload", "results"):  # exported from the start, at zero
    for _reason in ("deleted", "expired"):
        OBJECTS_REMOVED.labels(_kind, _reason)
