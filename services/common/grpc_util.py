"""gRPC plumbing shared by the services: servers with metrics/logging, channels, status mapping."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import Histogram

from services.common.logging import bound_contextvars, get_logger

RPC_LATENCY = Histogram("timbr_grpc_request_duration_seconds", "gRPC handler latency",
                        ["service", "method", "code"])
REQUEST_ID_KEY = "x-request-id"
log = get_logger(__name__)


class _ObservingInterceptor(grpc.ServerInterceptor):
    """Times every unary call and binds the caller's request id in the logs."""

    def __init__(self, service: str) -> None:
        self._service = service

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = details.method.rsplit("/", 1)[-1]
        request_id = dict(details.invocation_metadata or ()).get(REQUEST_ID_KEY, "")
        inner = handler.unary_unary

        def wrapper(request, context):
            start = time.perf_counter()
            code = "OK"
            with bound_contextvars(request_id=request_id, rpc=method):
                try:
                    return inner(request, context)
                except Exception:
                    code = "ERROR"
                    raise
                finally:
                    c = context.code() if hasattr(context, "code") else None
                    code = c.name if isinstance(c, grpc.StatusCode) else code
                    RPC_LATENCY.labels(self._service, method, code).observe(time.perf_counter() - start)

        return grpc.unary_unary_rpc_method_handler(
            wrapper, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


def make_server(service: str, addr: str, add_servicer: Callable[[grpc.Server], None],
                workers: int = 16) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                         interceptors=[_ObservingInterceptor(service)])
    add_servicer(server)
    # The standard gRPC health service, for Kubernetes grpc probes and load balancers.
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(addr)
    if port == 0:
        raise RuntimeError(f"cannot bind gRPC server to {addr}")
    server.start()
    return server, port


class _WaitForReady(grpc.UnaryUnaryClientInterceptor):
    """Calls wait (up to their deadline) for the channel to connect instead of failing at once.

    Services start in any order and restart; without this a call made while the channel is in
    reconnect backoff fails with UNAVAILABLE even though the peer is up a moment later.
    """

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(client_call_details._replace(wait_for_ready=True), request)


def channel(addr: str) -> grpc.Channel:
    raw = grpc.insecure_channel(addr, options=[("grpc.enable_retries", 1),
                                               ("grpc.keepalive_time_ms", 30000),
                                               ("grpc.initial_reconnect_backoff_ms", 200),
                                               ("grpc.max_reconnect_backoff_ms", 5000)])
    return grpc.intercept_channel(raw, _WaitForReady())


def metadata(request_id: str | None) -> tuple[tuple[str, str], ...]:
    return ((REQUEST_ID_KEY, request_id),) if request_id else ()


ERROR_CODE_KEY = "error-code"


def abort(context: grpc.ServicerContext, status: grpc.StatusCode, code: str, message: str, **extra) -> None:
    """Abort with the API error code (and any extra fields) in trailing metadata for the gateway."""
    context.set_trailing_metadata(((ERROR_CODE_KEY, code),) + tuple((k, str(v)) for k, v in extra.items()))
    context.abort(status, message)


def error_details(exc: grpc.RpcError) -> dict[str, str]:
    """The trailing metadata of a failed call as a dict (error-code and extras)."""
    try:
        return {k: v for k, v in (exc.trailing_metadata() or ())}
    except Exception:  # noqa: BLE001 - not every RpcError carries metadata
        return {}
