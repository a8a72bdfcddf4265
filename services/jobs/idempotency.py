"""Idempotency keys: a retried creation returns what the first one made, never a second thing.

A key belongs to an account and lives 24 h. Claiming it stores the request's fingerprint and
the id of the resource the request will make (a job id, a file id), chosen before anything is
reserved. The primary key (account, key) lets one claim win when requests race; the others
find the claim and then
- the same fingerprint: wait until the resource exists, and return it (a replay);
- another fingerprint or endpoint: ``IdempotencyConflict``.
A claim whose request failed is released, so the key can be retried; a claim left by a process
that died is taken over after ``lease_s``, with the same resource id (Billing's Reserve is
idempotent per job id, so the takeover reserves nothing twice).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.jobs.errors import IdempotencyConflict, IdempotencyInProgress, InvalidRequest
from services.jobs.models import IdempotencyKey, utcnow

KEY_TTL = dt.timedelta(hours=24)
MAX_KEY_LENGTH = 255


def fingerprint(*parts) -> str:
    """sha256 of the request's canonical JSON: the same request always hashes the same."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_key(key: str) -> str:
    if not (1 <= len(key) <= MAX_KEY_LENGTH) or not key.isprintable() or not key.isascii():
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return key


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


class IdempotencyKeys:
    def __init__(self, sessions: sessionmaker, wait_s: float = 15.0, lease_s: float = 60.0) -> None:
        self._sessions = sessions
        self._wait_s = wait_s
        self._lease = dt.timedelta(seconds=lease_s)

    def claim(self, account_id: str, key: str, endpoint: str, fp: str, new_id: str,
              existing: Callable[[Session, str], object | None],
              create: Callable[[Session], None] | None = None) -> tuple[str, object | None]:
        """Returns (resource id, the existing resource or None when this request must make it).

        ``create``, when given, adds the resource in the claim's own transaction (files), so a
        claim never exists without its resource.
        """
        check_key(key)
        deadline = time.monotonic() + self._wait_s
        while True:
            try:
                with self._sessions.begin() as s:
                    row = s.get(IdempotencyKey, (account_id, key), with_for_update=True)
                    now = utcnow()
                    if row is not None and _aware(row.created_at) < now - KEY_TTL:
                        s.delete(row)
                        s.flush()
                        row = None
                    if row is None:
                        s.add(IdempotencyKey(account_id=account_id, key=key, endpoint=endpoint, fingerprint=fp,
                                             resource_id=new_id, created_at=now))
                        if create is not None:
                            create(s)
                        return new_id, None
                    if row.endpoint != endpoint or row.fingerprint != fp:
                        raise IdempotencyConflict(
                            f"Idempotency-Key {key!r} was used with another request "
                            f"({row.endpoint}, made {row.resource_id}); use a new key for a new request")
                    found = existing(s, row.resource_id)
                    if found is not None:
                        return row.resource_id, found
                    if _aware(row.created_at) < now - self._lease:  # its request died: take over
                        row.created_at = now
                        return row.resource_id, None
            except IntegrityError:
                continue  # another request claimed the key first: read its claim
            if time.monotonic() > deadline:
                raise IdempotencyInProgress(f"a request with Idempotency-Key {key!r} is still in progress")
            time.sleep(0.05)

    def release(self, account_id: str, key: str, resource_id: str) -> None:
        """Forget a claim whose request failed, so that the key can be used again."""
        with self._sessions.begin() as s:
            s.execute(delete(IdempotencyKey).where(IdempotencyKey.account_id == account_id,
                                                   IdempotencyKey.key == key,
                                                   IdempotencyKey.resource_id == resource_id))

    def rotate(self, account_id: str, key: str, old_id: str, new_id: str) -> None:
        """Point a taken-over claim at a fresh resource id (its old reservation was released)."""
        with self._sessions.begin() as s:
            row = s.get(IdempotencyKey, (account_id, key), with_for_update=True)
            if row is not None and row.resource_id == old_id:
                row.resource_id = new_id

    def purge(self) -> int:
        """Delete keys older than 24 h. Returns how many."""
        with self._sessions.begin() as s:
            result = s.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - KEY_TTL))
            return result.rowcount or 0
