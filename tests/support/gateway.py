"""A second gateway in the test process, on a running stack's billing and jobs, with settings of
the test's own (a small upload limit, tight rate limits, Redis counters)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import uvicorn

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from tools.devbroker import free_port


@contextmanager
def serve_gateway(stack, **settings):
    config = GatewaySettings(billing_addr=f"127.0.0.1:{stack.billing_port}", jobs_addr=f"127.0.0.1:{stack.jobs_port}",
                             storage_root=stack.root / "storage", port=free_port(), **settings)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=config.port, log_config=None,
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield config.port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
