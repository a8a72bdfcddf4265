"""Dependencies of the routes, as ``Annotated`` aliases: settings, clients, the caller's account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import grpc
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.common.grpc_util import metadata
from services.common.pb.timbr.v1 import billing_pb2, billing_pb2_grpc, jobs_pb2_grpc
from services.common.storage import Storage
from services.gateway.config import GatewaySettings
from services.gateway.errors import ApiError
from services.gateway.ratelimit import Limiter


@dataclass
class Clients:
    settings: GatewaySettings
    billing: billing_pb2_grpc.BillingStub
    jobs: jobs_pb2_grpc.JobsStub
    storage: Storage
    channels: tuple[grpc.Channel, ...]
    limiter: Limiter


def get_clients(request: Request) -> Clients:
    return request.app.state.clients


ClientsDep = Annotated[Clients, Depends(get_clients)]

# Declared for the OpenAPI document (Swagger's Authorize button adds "Bearer "); the header
# itself is read below so that a plain "TBR_..." works as well.
_bearer = HTTPBearer(auto_error=False, scheme_name="TimbrToken",
                     description="Your token, e.g. TBR_8b3364b5a772... (Swagger adds 'Bearer ')")


@dataclass(frozen=True)
class Caller:
    account_id: str
    name: str
    request_id: str

    @property
    def metadata(self):
        return metadata(self.request_id)


def client_address(request: Request) -> str:
    """The caller's address (from X-Forwarded-For only behind a trusted proxy: uvicorn's
    proxy headers with TIMBR_FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


def current_account(request: Request, clients: ClientsDep,
                    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
    header = request.headers.get("authorization", "").strip()
    token = header[7:].strip() if header.lower().startswith("bearer ") else header
    address = client_address(request)
    clients.limiter.refuse_if_failing_auth(address)
    if not token:
        clients.limiter.auth_failed(address)
        raise ApiError(401, "unauthorized", "missing Authorization header: send 'TBR_<token>' or 'Bearer TBR_<token>'")
    request_id = request.state.request_id
    try:
        account = clients.billing.Authenticate(billing_pb2.AuthenticateRequest(token=token),
                                               timeout=clients.settings.grpc_timeout_s, metadata=metadata(request_id))
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            clients.limiter.auth_failed(address)
            raise ApiError(401, "unauthorized", "invalid or revoked token") from exc
        raise
    clients.limiter.account(account.account_id)
    from services.common.logging import bind_contextvars

    bind_contextvars(account=account.account_id)
    return Caller(account.account_id, account.name, request_id)


CurrentAccount = Annotated[Caller, Depends(current_account)]


REPLAYED_HEADER = "Idempotent-Replayed"


def idempotency_key(key: Annotated[str | None, Header(
        alias="Idempotency-Key", max_length=255,
        description="Makes the request safe to retry: the same key with the same body returns the first "
                    "response (header `Idempotent-Replayed: true`), the same key with another body is a 409 "
                    "`idempotency_conflict`. Kept 24 h per account. Any unique string, e.g. a UUID.")] = None) -> str:
    if key is None:
        return ""
    if not key or not key.isascii() or not key.isprintable():
        raise ApiError(422, "validation_error", "Idempotency-Key must be 1 to 255 printable ASCII characters")
    return key


IdempotencyKeyDep = Annotated[str, Depends(idempotency_key)]


def check_webhook_url(url: str | None, settings: GatewaySettings) -> str:
    """'' for none; ``invalid_webhook_url`` (422) for a URL webhooks may not call."""
    from services.common.netguard import TargetRefused, resolve

    if not url:
        return ""
    try:
        resolve(url, settings.webhook_allow_private)
    except TargetRefused as exc:
        raise ApiError(422, "invalid_webhook_url", f"webhook_url refused: {exc}") from exc
    return url
