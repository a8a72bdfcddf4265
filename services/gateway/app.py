"""The REST edge: FastAPI app factory, middleware (request ids, logs, metrics) and health."""

from __future__ import annotations

import re
import time
import uuid

import grpc
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.grpc_util import channel
from services.common.logging import bound_contextvars, get_logger
from services.common.pb.timbr.v1 import billing_pb2_grpc, jobs_pb2_grpc
from services.common.storage import Storage, make_storage
from services.gateway import errors, openapi
from services.gateway.config import GatewaySettings
from services.gateway.deps import Clients, client_address
from services.gateway.metrics import HTTP_LATENCY
from services.gateway.ratelimit import Limiter, RateLimited
from services.gateway.routes import audio, jobs, objects, upload, viewer

log = get_logger(__name__)
# A client's x-request-id travels on in gRPC metadata, Kafka headers, logs and a 64-character
# column: anything but a short plain token is replaced by a fresh id.
UNLIMITED = frozenset({"/healthz", "/readyz", "/metrics"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_of(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

DESCRIPTION = """
Timbr separates audio into stems, enhances it and diarizes it, asynchronously.

**Authentication**: send your token in the `Authorization` header, as `TBR_...` or
`Bearer TBR_...` (the Authorize button adds "Bearer " for you).

**Workflow**: `POST /v1/upload` -> `POST /v1/audio/{separate|enhance|diarize}` ->
poll `GET /v1/jobs/{job_id}` -> download the results from their signed URLs.

**Credits**: 1 credit per second of input audio, rounded up; reserved when the job is created
(402 `insufficient_credits` when they do not fit), charged on completion, released on failure.

**Errors** are JSON: `{"error": {"code": "...", "message": "..."}}`.
"""


def create_app(settings: GatewaySettings | None = None, storage: Storage | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    docs = {} if settings.docs_enabled else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="Timbr Audio API", version="1.0.0", description=DESCRIPTION,
                  swagger_ui_parameters={"persistAuthorization": True}, **docs)
    billing_ch, jobs_ch = channel(settings.billing_addr, settings.service_token), channel(settings.jobs_addr, settings.service_token)
    app.state.clients = Clients(settings, billing_pb2_grpc.BillingStub(billing_ch), jobs_pb2_grpc.JobsStub(jobs_ch),
                                storage or make_storage(settings), (billing_ch, jobs_ch), Limiter(settings))
    errors.install(app)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        request_id = request_id_of(request)
        request.state.request_id = request_id
        start = time.perf_counter()
        status = 500
        with bound_contextvars(request_id=request_id):
            try:
                response = _limited(request) or await call_next(request)
                status = response.status_code
            finally:
                route = request.scope.get("route")
                path = getattr(route, "path", "unmatched")
                elapsed = time.perf_counter() - start
                HTTP_LATENCY.labels(request.method, path, str(status)).observe(elapsed)
                if path not in ("/metrics", "/healthz", "/readyz"):
                    log.info("http.request", method=request.method, route=path, status=status,
                             ms=round(elapsed * 1000, 1))
        response.headers["x-request-id"] = request_id
        return response

    def _limited(request: Request) -> Response | None:
        """The per-client limit, on every request but the probes and metrics."""
        if request.url.path in UNLIMITED:
            return None
        try:
            app.state.clients.limiter.client(client_address(request))
        except RateLimited as exc:
            return errors.response_for(exc)
        return None

    @app.get("/healthz", tags=["Health"], summary="The process is alive")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["Health"], summary="Billing and jobs are reachable")
    def readyz():
        down = []
        for name, ch in zip(("billing", "jobs"), app.state.clients.channels, strict=True):
            try:
                grpc.channel_ready_future(ch).result(timeout=1)
            except grpc.FutureTimeoutError:
                down.append(name)
        if down:
            return JSONResponse(errors.error_body("service_unavailable", f"not reachable: {', '.join(down)}"), 503)
        return {"status": "ready"}

    if not settings.metrics_port:  # else served on its own port by __main__, off the public API
        @app.get("/metrics", include_in_schema=False)
        def metrics():
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for module in (upload, audio, jobs, objects, viewer):
        app.include_router(module.router)
    openapi.install(app)
    return app
