"""python -m services.billing: the billing gRPC server and the publisher of its credit events."""

from prometheus_client import start_http_server

from services.billing import metrics
from services.billing.config import BillingSettings
from services.billing.models import CreditOutbox
from services.billing.server import serve
from services.billing.service import BillingService
from services.common.logging import configure_logging, get_logger
from services.common.migrate import open_database
from services.common.outbox import OutboxPublisher


def main() -> None:
    settings = BillingSettings()
    configure_logging("billing", settings.log_level)
    start_http_server(settings.metrics_port)
    sessions = open_database("billing", settings.database_url)
    publisher = OutboxPublisher(sessions, CreditOutbox, settings.kafka_bootstrap, metrics.OUTBOX_PENDING,
                                settings.outbox_poll_s, keep_s=settings.outbox_keep_s)
    publisher.start()
    server, port = serve(settings, BillingService(sessions))
    get_logger().info("billing.started", port=port, metrics_port=settings.metrics_port)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
