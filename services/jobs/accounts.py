"""Per-account settings kept by the jobs service: the default webhook URL, the secret that
signs deliveries (made on first use, shown to the account, rotatable) and the retention
override. An account without a row has no default webhook and the service's retention.
Rows are made only for accounts Billing knows: an unknown id is ``AccountNotFound``."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.jobs.errors import AccountNotFound, InvalidRequest
from services.jobs.models import AccountSettings, utcnow

MAX_RETENTION_DAYS = 3650


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


class AccountSettingsStore:
    def __init__(self, sessions: sessionmaker, default_retention_days: float,
                 account_exists: Callable[[str], bool] | None = None) -> None:
        """``account_exists`` (Billing's answer) is asked before a row is made; None: not asked
        (the webhook dispatcher, whose accounts own the jobs it delivers)."""
        self._sessions = sessions
        self.default_retention_days = default_retention_days
        self._account_exists = account_exists

    def get(self, account_id: str) -> AccountSettings:
        """The account's settings, created (with a fresh secret) on first use, so the secret it
        is shown is the one that signs its deliveries; nothing is made for an unknown account."""
        if not account_id:
            raise InvalidRequest("account_id is required")
        for _ in range(3):
            with self._sessions() as s:
                row = s.get(AccountSettings, account_id)
                if row is not None:
                    return row
            if self._account_exists is not None and not self._account_exists(account_id):
                raise AccountNotFound(f"account {account_id} not found")
            try:
                with self._sessions.begin() as s:
                    row = AccountSettings(account_id=account_id, webhook_url="", webhook_secret=new_secret(),
                                          retention_days=0)
                    s.add(row)
                return row
            except IntegrityError:
                continue  # made meanwhile by another request: read it
        raise RuntimeError(f"account settings for {account_id} could not be read")

    def _update(self, account_id: str, **values) -> AccountSettings:
        self.get(account_id)
        with self._sessions.begin() as s:
            row = s.get(AccountSettings, account_id, with_for_update=True)
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
        return row

    def set_webhook(self, account_id: str, url: str, rotate_secret: bool = False) -> AccountSettings:
        values: dict = {"webhook_url": url}
        if rotate_secret:
            values["webhook_secret"] = new_secret()
        return self._update(account_id, **values)

    def set_retention(self, account_id: str, days: int) -> AccountSettings:
        if not 0 <= days <= MAX_RETENTION_DAYS:
            raise InvalidRequest(f"retention_days must be 1..{MAX_RETENTION_DAYS}, or 0 for the default")
        return self._update(account_id, retention_days=days)

    def effective_days(self, row: AccountSettings | None) -> float:
        return float(row.retention_days) if row is not None and row.retention_days else self.default_retention_days

    def retention_days(self, account_id: str, session: Session | None = None) -> float:
        if session is not None:
            return self.effective_days(session.get(AccountSettings, account_id))
        with self._sessions() as s:
            return self.effective_days(s.get(AccountSettings, account_id))

    def overrides(self) -> dict[str, float]:
        """Accounts with their own retention, for the sweeper."""
        from sqlalchemy import select

        with self._sessions() as s:
            rows = s.execute(select(AccountSettings.account_id, AccountSettings.retention_days)
                             .where(AccountSettings.retention_days > 0))
            return {a: float(d) for a, d in rows}
