"""The jobs service's view of Billing: reserve and settle a job's credits, gRPC kept here.

Billing's answers become jobs errors (``InsufficientCredits`` with the typed needed/available
Billing sends, ``Unavailable`` when it does not answer), so ``JobsService`` holds no gRPC types.
"""

from __future__ import annotations

import grpc

from services.common.grpc_util import channel, error_detail, error_details, metadata
from services.common.logging import get_logger
from services.common.pb.timbr.v1 import billing_pb2, billing_pb2_grpc
from services.jobs.errors import InsufficientCredits, Unavailable

log = get_logger(__name__)


class BillingClient:
    def __init__(self, target: str | grpc.Channel, timeout_s: float = 10.0, service_token: str = "") -> None:
        ch = channel(target, service_token) if isinstance(target, str) else target
        self._stub = billing_pb2_grpc.BillingStub(ch)
        self._timeout = timeout_s

    def reserve(self, job_id: str, account_id: str, credits: int, request_id: str = "") -> str:
        """Reserve (idempotent per job); returns the reservation's state (reserved, confirmed, released)."""
        try:
            return self._stub.Reserve(
                billing_pb2.ReserveRequest(job_id=job_id, account_id=account_id, credits=credits),
                timeout=self._timeout, metadata=metadata(request_id)).state
        except grpc.RpcError as exc:
            refused = error_detail(exc, billing_pb2.InsufficientCreditsDetail)
            if refused is not None:
                raise InsufficientCredits(exc.details(), required=refused.needed,
                                          available=refused.available) from exc
            raise Unavailable(f"billing failed: {exc.code().name}: {exc.details()}") from exc

    def settle(self, job_id: str, how: str) -> None:
        """Confirm or release a job's credits; idempotent. A settle Billing refuses for good (no
        reservation, or the other settle happened first) is logged and skipped; ``Unavailable``
        when Billing does not answer, to be retried."""
        call = self._stub.Confirm if how == "confirm" else self._stub.Release
        try:
            call(billing_pb2.SettleRequest(job_id=job_id), timeout=self._timeout)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ABORTED):
                log.warning("credits.settle_skipped", job_id=job_id, how=how, reason=exc.details(),
                            code=error_details(exc).get("error-code", ""))
                return
            raise Unavailable(f"billing {how} failed: {exc.code().name}") from exc

    def account_exists(self, account_id: str) -> bool:
        """Whether Billing knows the account; ``Unavailable`` when it does not answer."""
        try:
            self._stub.GetAccount(billing_pb2.GetAccountRequest(account_id=account_id), timeout=self._timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise Unavailable(f"billing failed: {exc.code().name}") from exc
        return True

    def open_reservations(self, older_than_s: float, limit: int = 500) -> list[str]:
        """Job ids of reservations neither confirmed nor released, older than ``older_than_s``."""
        try:
            resp = self._stub.ListOpenReservations(
                billing_pb2.ListOpenReservationsRequest(older_than_s=older_than_s, limit=limit), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise Unavailable(f"billing failed: {exc.code().name}") from exc
        return [r.job_id for r in resp.reservations]
