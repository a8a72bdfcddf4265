"""Billing gRPC servicer: protobuf in and out, rules in ``BillingService``, errors mapped here."""

from __future__ import annotations

from contextlib import contextmanager

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.billing import errors
from services.billing.service import BillingService
from services.common.grpc_util import REQUEST_ID_KEY, abort
from services.common.pb.timbr.v1 import billing_pb2 as pb
from services.common.pb.timbr.v1 import billing_pb2_grpc as pb_grpc

_CODES = {
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.InsufficientCredits: grpc.StatusCode.FAILED_PRECONDITION,
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Conflict: grpc.StatusCode.ABORTED,
}


def ts(value) -> Timestamp:
    t = Timestamp()
    if value is not None:
        t.FromDatetime(value)
    return t


@contextmanager
def _mapped(context: grpc.ServicerContext):
    try:
        yield
    except errors.BillingError as exc:
        detail = (pb.InsufficientCreditsDetail(needed=exc.needed, available=exc.available)
                  if isinstance(exc, errors.InsufficientCredits) else None)
        abort(context, _CODES.get(type(exc), grpc.StatusCode.INTERNAL), exc.code, exc.message, detail)


def _request_id(context: grpc.ServicerContext) -> str:
    return dict(context.invocation_metadata() or ()).get(REQUEST_ID_KEY, "")


def _balance(b) -> pb.Balance:
    return pb.Balance(account_id=b.account_id, available=b.available, reserved=b.reserved, spent=b.spent)


def _account(a) -> pb.Account:
    return pb.Account(account_id=a.account_id, name=a.name, created_at=ts(a.created_at))


class BillingServicer(pb_grpc.BillingServicer):
    def __init__(self, service: BillingService) -> None:
        self.svc = service

    def CreateAccount(self, request, context):
        with _mapped(context):
            return _account(self.svc.create_account(request.name))

    def GetAccount(self, request, context):
        with _mapped(context):
            return _account(self.svc.get_account(request.account_id))

    def IssueToken(self, request, context):
        with _mapped(context):
            token_id, token = self.svc.issue_token(request.account_id, request.label)
            return pb.IssueTokenResponse(token_id=token_id, token=token)

    def RevokeToken(self, request, context):
        with _mapped(context):
            self.svc.revoke_token(request.token_id)
            return pb.RevokeTokenResponse(revoked=True)

    def ListTokens(self, request, context):
        with _mapped(context):
            return pb.ListTokensResponse(tokens=[
                pb.TokenInfo(token_id=t.token_id, label=t.label, prefix=t.prefix, revoked=t.revoked,
                             created_at=ts(t.created_at)) for t in self.svc.list_tokens(request.account_id)])

    def Authenticate(self, request, context):
        with _mapped(context):
            return _account(self.svc.authenticate(request.token))

    def GrantCredits(self, request, context):
        with _mapped(context):
            return _balance(self.svc.grant(request.account_id, request.credits, request.reason,
                                           _request_id(context)))

    def GetBalance(self, request, context):
        with _mapped(context):
            self.svc.get_account(request.account_id)
            return _balance(self.svc.balance(request.account_id))

    def ListLedger(self, request, context):
        with _mapped(context):
            return pb.ListLedgerResponse(entries=[
                pb.LedgerEntry(entry_id=e.entry_id, account_id=e.account_id, kind=e.kind, credits=e.credits,
                               job_id=e.job_id or "", reason=e.reason, created_at=ts(e.created_at))
                for e in self.svc.ledger(request.account_id, request.limit)])

    def _reservation(self, r) -> pb.Reservation:
        return pb.Reservation(job_id=r.job_id, account_id=r.account_id, credits=r.credits, state=r.state,
                              balance=_balance(self.svc.balance(r.account_id)))

    def Reserve(self, request, context):
        with _mapped(context):
            return self._reservation(self.svc.reserve(request.job_id, request.account_id, request.credits,
                                                      _request_id(context)))

    def Confirm(self, request, context):
        with _mapped(context):
            return self._reservation(self.svc.confirm(request.job_id, _request_id(context)))

    def Release(self, request, context):
        with _mapped(context):
            return self._reservation(self.svc.release(request.job_id, _request_id(context)))

    def ListOpenReservations(self, request, context):
        with _mapped(context):
            return pb.ListOpenReservationsResponse(reservations=[
                pb.Reservation(job_id=r.job_id, account_id=r.account_id, credits=r.credits, state=r.state)
                for r in self.svc.open_reservations(request.older_than_s, request.limit)])


def serve(settings, service: BillingService | None = None):
    """Start the gRPC server; returns (server, bound port)."""
    from services.common.grpc_util import make_server
    from services.common.migrate import open_database

    service = service or BillingService(open_database("billing", settings.database_url))
    return make_server("billing", settings.grpc_listen,
                       lambda s: pb_grpc.add_BillingServicer_to_server(BillingServicer(service), s),
                       service_token=settings.service_token,
                       service_names=(pb.DESCRIPTOR.services_by_name["Billing"].full_name,))
