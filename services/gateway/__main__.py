"""python -m services.gateway: the REST API on TIMBR_HOST:TIMBR_PORT."""

import uvicorn
from prometheus_client import start_http_server

from services.common.logging import configure_logging
from services.gateway.app import create_app
from services.gateway.config import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                access_log=False, proxy_headers=True, forwarded_allow_ips=settings.forwarded_allow_ips)


if __name__ == "__main__":
    main()
