"""Billing rules: accounts, hashed tokens, and credits as an append-only ledger.

The balance is never stored: it is summed from the ledger. Reserve / Confirm / Release are
keyed by job id and idempotent (a unique (job_id, kind) constraint backs that up), so any
number of retries or duplicate events charge a job at most once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import uuid
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.billing import metrics
from services.billing.errors import Conflict, InsufficientCredits, InvalidRequest, NotFound, Unauthenticated
from services.billing.models import Account, CreditOutbox, LedgerEntry, Token
from services.common.kafka import credit_event_type, headers
from services.common.pb.timbr.v1 import events_pb2
from services.common.settings import TOPIC_CREDITS

TOKEN_PREFIX = "TBR_"
_EVENT_TYPES = {"grant": events_pb2.CREDIT_EVENT_TYPE_GRANTED, "reserve": events_pb2.CREDIT_EVENT_TYPE_RESERVED,
                "confirm": events_pb2.CREDIT_EVENT_TYPE_CONFIRMED, "release": events_pb2.CREDIT_EVENT_TYPE_RELEASED}


@dataclass(frozen=True)
class Balance:
    account_id: str
    available: int
    reserved: int
    spent: int


@dataclass(frozen=True)
class Reservation:
    job_id: str
    account_id: str
    credits: int
    state: str  # reserved | confirmed | released


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class BillingService:
    def __init__(self, sessions: sessionmaker) -> None:
        self._sessions = sessions
        # Reservations check-then-insert; one process serialises them here, several
        # PostgreSQL replicas serialise on the account row (SELECT ... FOR UPDATE).
        self._reserve_lock = threading.Lock()

    # accounts and tokens -------------------------------------------------------------------------

    def create_account(self, name: str) -> Account:
        if not name.strip():
            raise InvalidRequest("an account needs a name")
        with self._sessions.begin() as s:
            account = Account(account_id=f"acc_{uuid.uuid4().hex[:20]}", name=name.strip())
            s.add(account)
        return account

    def get_account(self, account_id: str) -> Account:
        with self._sessions() as s:
            account = s.get(Account, account_id)
            if account is None:
                raise NotFound(f"account {account_id} not found")
            return account

    def issue_token(self, account_id: str, label: str = "") -> tuple[str, str]:
        """Returns (token_id, token). The token is shown once; only its hash is kept."""
        self.get_account(account_id)
        token = TOKEN_PREFIX + secrets.token_hex(20)
        token_id = f"tok_{uuid.uuid4().hex[:16]}"
        with self._sessions.begin() as s:
            s.add(Token(token_id=token_id, account_id=account_id, token_hash=hash_token(token),
                        prefix=token[:10], label=label))
        return token_id, token

    def revoke_token(self, token_id: str) -> None:
        with self._sessions.begin() as s:
            row = s.get(Token, token_id)
            if row is None:
                raise NotFound(f"token {token_id} not found")
            row.revoked = True

    def list_tokens(self, account_id: str) -> list[Token]:
        with self._sessions() as s:
            return list(s.scalars(select(Token).where(Token.account_id == account_id).order_by(Token.created_at)))

    def authenticate(self, token: str) -> Account:
        """Resolve a token; the stored hash is compared in constant time."""
        if not token.startswith(TOKEN_PREFIX):
            raise Unauthenticated("tokens start with TBR_")
        presented = hash_token(token)
        with self._sessions() as s:
            row = s.scalar(select(Token).where(Token.token_hash == presented))
            if row is None or row.revoked or not hmac.compare_digest(row.token_hash, presented):
                raise Unauthenticated("invalid or revoked token")
            return s.get(Account, row.account_id)

    # credits -------------------------------------------------------------------------------------

    def grant(self, account_id: str, credits: int, reason: str = "", request_id: str = "") -> Balance:
        if credits <= 0:
            raise InvalidRequest("grant a positive number of credits")
        self.get_account(account_id)
        with self._sessions.begin() as s:
            self._append(s, LedgerEntry(account_id=account_id, kind="grant", credits=credits, reason=reason),
                         request_id)
        metrics.CREDITS.labels("grant").inc(credits)
        return self.balance(account_id)

    def balance(self, account_id: str, session: Session | None = None) -> Balance:
        def _sum(kind: str):
            return func.coalesce(func.sum(case((LedgerEntry.kind == kind, LedgerEntry.credits), else_=0)), 0)

        query = select(_sum("grant"), _sum("reserve"), _sum("confirm"), _sum("release")).where(
            LedgerEntry.account_id == account_id)
        if session is not None:
            grant, reserve, confirm, release = session.execute(query).one()
        else:
            with self._sessions() as s:
                grant, reserve, confirm, release = s.execute(query).one()
        reserved = reserve - confirm - release
        return Balance(account_id, int(grant - reserve + release), int(reserved), int(confirm))

    def ledger(self, account_id: str, limit: int = 100) -> list[LedgerEntry]:
        with self._sessions() as s:
            q = (select(LedgerEntry).where(LedgerEntry.account_id == account_id)
                 .order_by(LedgerEntry.entry_id.desc()).limit(limit or 100))
            return list(s.scalars(q))

    def _entries(self, s: Session, job_id: str) -> dict[str, LedgerEntry]:
        return {e.kind: e for e in s.scalars(select(LedgerEntry).where(LedgerEntry.job_id == job_id))}

    @staticmethod
    def _state(entries: dict[str, LedgerEntry]) -> str:
        return "confirmed" if "confirm" in entries else "released" if "release" in entries else "reserved"

    def _append(self, s: Session, entry: LedgerEntry, request_id: str) -> None:
        """Add a ledger entry and, in the same transaction, its CreditEvent to the outbox."""
        s.add(entry)
        s.flush()  # assigns entry_id and makes the entry count in the balance below
        b = self.balance(entry.account_id, s)
        at = Timestamp()
        at.FromDatetime(entry.created_at)
        event = events_pb2.CreditEvent(
            event_id=f"ledger-{entry.entry_id}", entry_id=entry.entry_id, account_id=entry.account_id,
            type=_EVENT_TYPES[entry.kind], credits=entry.credits, job_id=entry.job_id or "", reason=entry.reason,
            available=b.available, reserved=b.reserved, spent=b.spent, request_id=request_id, occurred_at=at)
        s.add(CreditOutbox(topic=TOPIC_CREDITS, key=entry.account_id, payload=event.SerializeToString(),
                           headers=[[k, v.decode()] for k, v in headers(credit_event_type(event.type), request_id)]))

    def reserve(self, job_id: str, account_id: str, credits: int, request_id: str = "") -> Reservation:
        if credits < 0 or not job_id:
            raise InvalidRequest("a reservation needs a job id and credits >= 0")
        with self._reserve_lock, self._sessions.begin() as s:
            account = s.scalar(select(Account).where(Account.account_id == account_id).with_for_update())
            if account is None:
                raise NotFound(f"account {account_id} not found")
            entries = self._entries(s, job_id)
            if "reserve" in entries:  # idempotent replay
                e = entries["reserve"]
                if e.account_id != account_id:
                    raise Conflict(f"job {job_id} is reserved by another account")
                return Reservation(job_id, account_id, e.credits, self._state(entries))
            available = self.balance(account_id, s).available
            if credits > available:
                raise InsufficientCredits(credits, available)
            self._append(s, LedgerEntry(account_id=account_id, kind="reserve", credits=credits, job_id=job_id),
                         request_id)
        metrics.CREDITS.labels("reserve").inc(credits)
        return Reservation(job_id, account_id, credits, "reserved")

    def _settle(self, job_id: str, kind: str, request_id: str = "") -> Reservation:
        opposite = "release" if kind == "confirm" else "confirm"
        try:
            with self._sessions.begin() as s:
                entries = self._entries(s, job_id)
                reserve = entries.get("reserve")
                if reserve is None:
                    raise NotFound(f"no reservation for job {job_id}")
                if opposite in entries:
                    raise Conflict(f"job {job_id} was already {self._state(entries)}")
                if kind not in entries:
                    self._append(s, LedgerEntry(account_id=reserve.account_id, kind=kind,
                                                credits=reserve.credits, job_id=job_id), request_id)
                    metrics.CREDITS.labels(kind).inc(reserve.credits)
        except IntegrityError:  # a concurrent duplicate won the race: same outcome
            pass
        with self._sessions() as s:
            entries = self._entries(s, job_id)
            r = entries["reserve"]
            return Reservation(job_id, r.account_id, r.credits, self._state(entries))

    def open_reservations(self, older_than_s: float, limit: int = 500) -> list[Reservation]:
        """Reservations neither confirmed nor released, older than ``older_than_s``."""
        import datetime as dt

        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_s)
        settled = select(LedgerEntry.job_id).where(LedgerEntry.kind.in_(("confirm", "release")))
        q = (select(LedgerEntry).where(LedgerEntry.kind == "reserve", LedgerEntry.created_at < cutoff,
                                       LedgerEntry.job_id.not_in(settled))
             .order_by(LedgerEntry.entry_id).limit(limit or 500))
        with self._sessions() as s:
            return [Reservation(e.job_id, e.account_id, e.credits, "reserved") for e in s.scalars(q)]

    def confirm(self, job_id: str, request_id: str = "") -> Reservation:
        return self._settle(job_id, "confirm", request_id)

    def release(self, job_id: str, request_id: str = "") -> Reservation:
        return self._settle(job_id, "release", request_id)
