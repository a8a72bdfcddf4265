"""The worker's probe and metrics port: ``/healthz`` (live), ``/readyz`` (ready), ``/metrics``.

Liveness answers 200 as long as the process serves HTTP. Readiness answers 200 only once every
pipeline has loaded and the consumer is polling, 503 before (and while stopping); a pipeline
that fails to load stops start-up instead, so a worker without its models never reports ready.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from wsgiref.simple_server import make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler


def start_probe_server(port: int, ready: Callable[[], bool], addr: str = "0.0.0.0"):
    """Serve the probes and metrics on ``port`` in a daemon thread; returns the server."""
    metrics = make_wsgi_app()

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ok = ready()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ready\n" if ok else b"not ready\n"]
        return metrics(environ, start_response)

    server = make_server(addr, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    return server
