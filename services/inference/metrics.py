"""Worker metrics, declared once."""

from prometheus_client import Counter, Histogram

JOBS_PROCESSED = Counter("timbr_worker_jobs_total", "Jobs handled by workers", ["job_type", "outcome"])
PIPELINE_SECONDS = Histogram("timbr_pipeline_seconds", "Pipeline wall time", ["job_type"],
                             buckets=(0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600))
REALTIME_FACTOR = Histogram("timbr_pipeline_realtime_factor", "Processing time / audio duration", ["job_type"],
                            buckets=(0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5))
STAGE_SECONDS = Histogram("timbr_pipeline_stage_seconds", "Time per pipeline step", ["job_type", "stage"])
