"""python -m services.inference: a worker of the job types in TIMBR_WORKER_JOB_TYPES."""

import os
import signal

# OpenMP runtimes (CTranslate2, onnxruntime) spin-wait by default, which starves the worker's
# other threads on small machines (measured in docs/serving.md); set before they load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from prometheus_client import start_http_server

from services.common.kafka import ensure_topics
from services.common.logging import configure_logging
from services.inference.config import WorkerSettings
from services.inference.worker import build_worker


def main() -> None:
    settings = WorkerSettings()
    configure_logging("inference", settings.log_level)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    ensure_topics(settings.kafka_bootstrap)
    worker = build_worker(settings)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    worker.run()


if __name__ == "__main__":
    main()
