"""Billing rules on SQLite and PostgreSQL: ledger, idempotent settles, tokens."""

from __future__ import annotations

import threading

import pytest

from services.billing.errors import Conflict, InsufficientCredits, NotFound, Unauthenticated
from services.billing.models import Token
from services.billing.service import BillingService, hash_token
from services.common.migrate import migrated_sessionmaker


@pytest.fixture
def billing(db_url) -> BillingService:
    return BillingService(migrated_sessionmaker("billing", db_url))


def test_balance_is_derived_from_the_ledger(billing):
    acc = billing.create_account("a").account_id
    billing.grant(acc, 100)
    billing.reserve("j1", acc, 30)
    billing.reserve("j2", acc, 20)
    assert billing.balance(acc) == type(billing.balance(acc))(acc, 50, 50, 0)
    billing.confirm("j1")
    billing.release("j2")
    b = billing.balance(acc)
    assert (b.available, b.reserved, b.spent) == (70, 0, 30)
    assert [e.kind for e in reversed(billing.ledger(acc))] == ["grant", "reserve", "reserve", "confirm", "release"]


def test_reserve_confirm_release_are_idempotent(billing):
    acc = billing.create_account("a").account_id
    billing.grant(acc, 10)
    for _ in range(3):
        assert billing.reserve("j", acc, 4).state == "reserved"
    for _ in range(3):
        assert billing.confirm("j").state == "confirmed"
    with pytest.raises(Conflict):
        billing.release("j")
    assert sorted(e.kind for e in billing.ledger(acc)) == ["confirm", "grant", "reserve"]
    assert billing.balance(acc).available == 6 and billing.balance(acc).spent == 4


def test_release_then_confirm_is_refused(billing):
    acc = billing.create_account("a").account_id
    billing.grant(acc, 10)
    billing.reserve("j", acc, 10)
    billing.release("j")
    billing.release("j")
    with pytest.raises(Conflict):
        billing.confirm("j")
    assert billing.balance(acc).available == 10
    with pytest.raises(NotFound):
        billing.confirm("never-reserved")


def test_reservation_must_fit(billing):
    acc = billing.create_account("a").account_id
    billing.grant(acc, 5)
    with pytest.raises(InsufficientCredits) as err:
        billing.reserve("j", acc, 6)
    assert (err.value.needed, err.value.available) == (6, 5)
    assert billing.reserve("j", acc, 5).state == "reserved"
    with pytest.raises(InsufficientCredits):
        billing.reserve("k", acc, 1)


def test_concurrent_reservations_never_overdraw(billing):
    acc = billing.create_account("a").account_id
    billing.grant(acc, 10)
    outcomes = []

    def reserve(i):
        try:
            billing.reserve(f"job{i}", acc, 3)
            outcomes.append("ok")
        except InsufficientCredits:
            outcomes.append("refused")

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 3 and billing.balance(acc).available == 1


def test_tokens_are_hashed_and_revocable(billing):
    acc = billing.create_account("a").account_id
    token_id, token = billing.issue_token(acc, "ci")
    assert token.startswith("TBR_") and len(token) > 30
    assert billing.authenticate(token).account_id == acc
    with billing._sessions() as s:
        row = s.get(Token, token_id)
        assert row.token_hash == hash_token(token) and token not in (row.token_hash, row.prefix)
    for bad in ("TBR_" + "0" * 40, token[:-1], "nope", ""):
        with pytest.raises(Unauthenticated):
            billing.authenticate(bad)
    billing.revoke_token(token_id)
    with pytest.raises(Unauthenticated):
        billing.authenticate(token)


def _credit_events(billing):
    from sqlalchemy import select

    from services.billing.models import CreditOutbox
    from services.common.pb.timbr.v1 import events_pb2

    with billing._sessions() as s:
        rows = list(s.scalars(select(CreditOutbox).order_by(CreditOutbox.id)))
    return [(r, events_pb2.CreditEvent.FromString(r.payload)) for r in rows]


def test_every_ledger_entry_writes_one_credit_event(billing):
    """grant/reserve/confirm/release each put one CreditEvent in the outbox, in the entry's
    transaction: keyed by account, with job id, amount, the balance after it, and headers."""
    from services.common.pb.timbr.v1 import events_pb2 as ev

    acc = billing.create_account("a").account_id
    billing.grant(acc, 100, "welcome", request_id="req-1")
    billing.reserve("j1", acc, 30, request_id="req-2")
    billing.reserve("j1", acc, 30)  # replay: no second entry, no second event
    billing.reserve("j2", acc, 20)
    billing.confirm("j1")
    billing.confirm("j1")
    billing.release("j2")
    with pytest.raises(InsufficientCredits):
        billing.reserve("j3", acc, 1000)  # rolled back: no event either
    events = _credit_events(billing)
    got = [(e.type, e.job_id, e.credits, e.available, e.reserved, e.spent) for _, e in events]
    assert got == [(ev.CREDIT_EVENT_TYPE_GRANTED, "", 100, 100, 0, 0),
                   (ev.CREDIT_EVENT_TYPE_RESERVED, "j1", 30, 70, 30, 0),
                   (ev.CREDIT_EVENT_TYPE_RESERVED, "j2", 20, 50, 50, 0),
                   (ev.CREDIT_EVENT_TYPE_CONFIRMED, "j1", 30, 50, 20, 30),
                   (ev.CREDIT_EVENT_TYPE_RELEASED, "j2", 20, 70, 0, 30)]
    ledger_ids = sorted(e.entry_id for e in billing.ledger(acc))
    assert [e.entry_id for _, e in events] == ledger_ids
    assert {row.key for row, _ in events} == {acc} and {e.account_id for _, e in events} == {acc}
    assert {row.topic for row, _ in events} == {"billing.credits.events"}
    first = dict(events[0][0].headers)
    assert first == {"x-request-id": "req-1", "event-type": "credit.granted", "schema-version": "timbr.v1"}
    assert events[0][1].reason == "welcome" and events[1][1].request_id == "req-2"
    assert [dict(r.headers)["event-type"] for r, _ in events[1:]] == [
        "credit.reserved", "credit.reserved", "credit.confirmed", "credit.released"]
    assert all(r.sent_at is None for r, _ in events)



def test_sent_credit_events_are_pruned_after_a_while(billing):
    """The credit outbox keeps a row not yet sent, and one sent within ``keep_s``; the publisher
    deletes the older sent ones itself, on its first pass and then once every ``prune_every_s``."""
    import datetime as dt
    import time

    from prometheus_client import CollectorRegistry, Gauge

    from services.billing.models import CreditOutbox
    from services.common.db import utcnow
    from services.common.outbox import OutboxPublisher
    from tools.devbroker import free_port, start_broker

    acc = billing.create_account("a").account_id
    for credits in (1, 2, 3, 4):
        billing.grant(acc, credits, "g")
    now = utcnow()
    with billing._sessions.begin() as s:
        old, recent, unsent, later = s.query(CreditOutbox).order_by(CreditOutbox.id).all()
        old.sent_at = now - dt.timedelta(hours=7)
        recent.sent_at = now - dt.timedelta(hours=1)
        unsent.created_at = now - dt.timedelta(hours=9)
        later.sent_at = now - dt.timedelta(hours=5, minutes=59, seconds=58)
        ids = [r.id for r in (old, recent, unsent, later)]

    def left() -> list[int]:
        with billing._sessions() as s:
            return [r.id for r in s.query(CreditOutbox).order_by(CreditOutbox.id)]

    pending = Gauge("test_outbox_pending", "-", registry=CollectorRegistry())
    port = free_port()
    broker = start_broker(port)  # the unsent row goes out meanwhile, and is kept: sent just now
    publisher = OutboxPublisher(billing._sessions, CreditOutbox, f"127.0.0.1:{port}", pending,
                                interval_s=0.1, keep_s=6 * 3600, prune_every_s=3)
    publisher.start()
    try:
        deadline = time.monotonic() + 10
        while left() != ids[1:] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left() == ids[1:]  # the first pass pruned the 7 h old row only
        deadline = time.monotonic() + 15  # "later" passes 6 h within 2 s; the next prune takes it
        while left() != ids[1:3] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left() == ids[1:3]
    finally:
        publisher.stop()
        publisher.join(timeout=15)
        broker.kill()
        broker.wait()
    assert publisher.prune() == 0

def test_grpc_errors_carry_codes_and_the_refusal_typed(billing):
    """Billing answers with API error codes like jobs does; a refused reservation carries
    needed/available as a typed InsufficientCreditsDetail, not as metadata strings."""
    import grpc

    from services.billing.server import BillingServicer
    from services.common.grpc_util import ERROR_CODE_KEY, channel, error_detail, error_details, make_server
    from services.common.pb.timbr.v1 import billing_pb2, billing_pb2_grpc

    server, port = make_server("billing", "127.0.0.1:0",
                               lambda s: billing_pb2_grpc.add_BillingServicer_to_server(BillingServicer(billing), s))
    ch = channel(f"127.0.0.1:{port}")
    try:
        stub = billing_pb2_grpc.BillingStub(ch)
        acc = billing.create_account("a").account_id
        billing.grant(acc, 5)
        with pytest.raises(grpc.RpcError) as err:
            stub.Reserve(billing_pb2.ReserveRequest(job_id="j1", account_id=acc, credits=8), timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_details(err.value)[ERROR_CODE_KEY] == "insufficient_credits"
        refused = error_detail(err.value, billing_pb2.InsufficientCreditsDetail)
        assert (refused.needed, refused.available) == (8, 5)
        for call, request, status, code in (
            (stub.GetAccount, billing_pb2.GetAccountRequest(account_id="acc_nobody"), "NOT_FOUND", "not_found"),
            (stub.Authenticate, billing_pb2.AuthenticateRequest(token="nope"), "UNAUTHENTICATED", "unauthorized"),
            (stub.GrantCredits, billing_pb2.GrantCreditsRequest(account_id=acc, credits=0), "INVALID_ARGUMENT",
             "validation_error"),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call(request, timeout=10)
            assert err.value.code().name == status
            assert error_details(err.value)[ERROR_CODE_KEY] == code
            assert error_detail(err.value, billing_pb2.InsufficientCreditsDetail) is None
    finally:
        ch.close()
        server.stop(grace=None)
