"""python -m services.webhooks: the webhook dispatcher (its own consumer group on audio.jobs.events)."""

import signal
import threading

from prometheus_client import start_http_server

from services.common.kafka import ensure_topics
from services.common.logging import configure_logging, get_logger
from services.common.migrate import open_database
from services.common.storage import make_storage
from services.webhooks import metrics
from services.webhooks.config import WebhookSettings
from services.webhooks.dispatcher import Intake, Sender


def main() -> None:
    settings = WebhookSettings()
    configure_logging("webhooks", settings.log_level)
    start_http_server(settings.metrics_port, registry=metrics.REGISTRY)  # its own metrics only
    ensure_topics(settings.kafka_bootstrap)
    sessions = open_database("jobs", settings.database_url)  # the jobs database, migrated by its hook
    loops = [Intake(sessions, settings.kafka_bootstrap, settings.consumer_group, settings.webhook_max_age_s),
             Sender(sessions, make_storage(settings), settings)]
    for loop in loops:
        loop.start()
    get_logger().info("webhooks.started", metrics_port=settings.metrics_port,
                      allow_private=settings.webhook_allow_private)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    for loop in loops:
        loop.stop()
    for loop in loops:
        loop.join(timeout=15)


if __name__ == "__main__":
    main()
