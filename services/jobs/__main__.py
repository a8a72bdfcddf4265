"""python -m services.jobs: the jobs gRPC server with its outbox, event consumer and sweeper."""

import signal
import threading

from prometheus_client import start_http_server

from services.common.kafka import ensure_topics
from services.common.logging import configure_logging, get_logger
from services.jobs.app import start
from services.jobs.config import JobsSettings


def main() -> None:
    settings = JobsSettings()
    configure_logging("jobs", settings.log_level)
    start_http_server(settings.metrics_port)
    ensure_topics(settings.kafka_bootstrap)
    app = start(settings)
    get_logger().info("jobs.started", port=app.port, metrics_port=settings.metrics_port)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    app.stop()


if __name__ == "__main__":
    main()
