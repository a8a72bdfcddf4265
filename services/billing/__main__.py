"""python -m services.billing: the billing gRPC server."""

from prometheus_client import start_http_server

from services.billing.config import BillingSettings
from services.billing.server import serve
from services.common.logging import configure_logging, get_logger


def main() -> None:
    settings = BillingSettings()
    configure_logging("billing", settings.log_level)
    start_http_server(settings.metrics_port)
    server, port = serve(settings)
    get_logger().info("billing.started", port=port, metrics_port=settings.metrics_port)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
