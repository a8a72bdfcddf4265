"""python -m services.inference: a worker of the job types in TIMBR_WORKER_JOB_TYPES.

Start-up order: probes answer at once (live, not ready), the pipelines load (a failure exits
non-zero), the consumer subscribes, and only then does ``/readyz`` answer 200.
"""

import os
import signal

from services.inference.config import WorkerSettings


def main() -> None:
    settings = WorkerSettings()
    # Before any model library starts its OpenMP runtime (see WorkerSettings.omp_wait_policy).
    if settings.omp_wait_policy:
        os.environ.setdefault("OMP_WAIT_POLICY", settings.omp_wait_policy)

    from services.common.kafka import ensure_topics
    from services.common.logging import configure_logging
    from services.inference.app import build_worker
    from services.inference.health import start_probe_server

    configure_logging("inference", settings.log_level)
    worker = None
    if settings.metrics_port:
        start_probe_server(settings.metrics_port, lambda: worker is not None and worker.consuming.is_set())
    ensure_topics(settings.kafka_bootstrap)
    worker = build_worker(settings)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    worker.run()


if __name__ == "__main__":
    main()
