"""gRPC plumbing shared by the services: servers with metrics/logging, channels, status mapping.

Internal calls are authenticated with a shared service token (``TIMBR_SERVICE_TOKEN``, from a
Kubernetes Secret): a server given one refuses every call that does not carry it, except the
standard health service (Kubernetes probes send no metadata); ``channel`` sends it on every call.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent import futures
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Histogram

from services.common.digests import same_digest
from services.common.logging import bound_contextvars, get_logger

REQUEST_ID_KEY = "x-request-id"
SERVICE_TOKEN_KEY = "authorization"
# Health (probes) and reflection (the schema, no data) answer without the service token.
_OPEN_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.")
log = get_logger(__name__)
M = TypeVar("M", bound=Message)


@functools.cache
def _rpc_latency() -> Histogram:
    """Registered when this process makes its first server: the gateway and the worker, which
    only call, list no server latency on their ``/metrics``."""
    return Histogram("timbr_grpc_request_duration_seconds", "gRPC handler latency", ["service", "method", "code"])


class _RequireServiceToken(grpc.ServerInterceptor):
    """Refuses (UNAUTHENTICATED) a call without the service token, compared in constant time."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()
        self._deny = grpc.unary_unary_rpc_method_handler(
            lambda _request, context: context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                                    "internal calls need the service token"))

    def intercept_service(self, continuation, details):
        if details.method.startswith(_OPEN_METHODS):
            return continuation(details)
        given = dict(details.invocation_metadata or ()).get(SERVICE_TOKEN_KEY, "")
        if same_digest(self._expected, given):
            return continuation(details)
        log.warning("grpc.unauthenticated", method=details.method)
        return self._deny


class _ObservingInterceptor(grpc.ServerInterceptor):
    """Times every unary call and binds the caller's request id in the logs."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._latency = _rpc_latency()

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
                    self._latency.labels(self._service, method, code).observe(time.perf_counter() - start)

        return grpc.unary_unary_rpc_method_handler(
            wrapper, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


def make_server(service: str, addr: str, add_servicer: Callable[[grpc.Server], None],
                workers: int = 16, service_token: str = "",
                service_names: tuple[str, ...] = ()) -> tuple[grpc.Server, int]:
    """A started server; with ``service_token`` every call but health and reflection must carry it.

    ``service_names`` (e.g. ``timbr.v1.Billing``) get a health status of their own and are
    listed by server reflection, so grpcurl and grpc-health-probe work without the protos.
    """
    interceptors = [_ObservingInterceptor(service)]
    if service_token:
        interceptors.insert(0, _RequireServiceToken(service_token))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), interceptors=interceptors)
    add_servicer(server)
    # The standard gRPC health service, for Kubernetes grpc probes and load balancers.
    health_servicer = health.HealthServicer()
    for name in ("", *service_names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(addr)
    if port == 0:
        raise RuntimeError(f"cannot bind gRPC server to {addr}")
    server.start()
    return server, port


class _Outgoing(grpc.UnaryUnaryClientInterceptor):
    """Every call carries the service token (if any) and waits (up to its deadline) for the
    channel to connect instead of failing at once.

    Services start in any order and restart; without the wait a call made while the channel is
    in reconnect backoff fails with UNAVAILABLE even though the peer is up a moment later.
    """

    def __init__(self, service_token: str) -> None:
        self._token = ((SERVICE_TOKEN_KEY, f"Bearer {service_token}"),) if service_token else ()

    def intercept_unary_unary(self, continuation, client_call_details, request):
        details = client_call_details._replace(wait_for_ready=True,
                                               metadata=tuple(client_call_details.metadata or ()) + self._token)
        return continuation(details, request)


def channel(addr: str, service_token: str = "") -> grpc.Channel:
    raw = grpc.insecure_channel(addr, options=[("grpc.enable_retries", 1),
                                               ("grpc.keepalive_time_ms", 30000),
                                               ("grpc.initial_reconnect_backoff_ms", 200),
                                               ("grpc.max_reconnect_backoff_ms", 5000)])
    return grpc.intercept_channel(raw, _Outgoing(service_token))


def metadata(request_id: str | None) -> tuple[tuple[str, str], ...]:
    return ((REQUEST_ID_KEY, request_id),) if request_id else ()


ERROR_CODE_KEY = "error-code"
# gRPC's rich error model: a serialized google.rpc.Status whose details carry typed messages.
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def abort(context: grpc.ServicerContext, status: grpc.StatusCode, code: str, message: str,
          detail: Message | None = None, **extra: str) -> None:
    """Abort with the API error code (and any extra string fields) in trailing metadata and, when
    given, a typed ``detail`` message (e.g. ``InsufficientCreditsDetail``) in the status details."""
    trailing: tuple[tuple[str, str | bytes], ...] = ((ERROR_CODE_KEY, code),)
    trailing += tuple((k, str(v)) for k, v in extra.items())
    if detail is not None:
        rich = status_pb2.Status(code=status.value[0], message=message)
        rich.details.add().Pack(detail)
        trailing += ((STATUS_DETAILS_KEY, rich.SerializeToString()),)
    context.set_trailing_metadata(trailing)
    context.abort(status, message)


def error_detail(exc: grpc.RpcError, kind: type[M]) -> M | None:
    """The typed detail of kind ``kind`` a failed call carries, or None."""
    raw = error_details(exc).get(STATUS_DETAILS_KEY)
    if not isinstance(raw, bytes):
        return None
    for packed in status_pb2.Status.FromString(raw).details:
        if packed.Is(kind.DESCRIPTOR):
            detail = kind()
            packed.Unpack(detail)
            return detail
    return None


def error_details(exc: grpc.RpcError) -> dict[str, str | bytes]:
    """The trailing metadata of a failed call as a dict (error-code, status details)."""
    try:
        return {k: v for k, v in (exc.trailing_metadata() or ())}
    except Exception:  # noqa: BLE001 - not every RpcError carries metadata
        return {}
