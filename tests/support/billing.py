"""Reading an account's balance once its ended jobs are settled."""

from __future__ import annotations

import time

from services.common.pb.timbr.v1 import billing_pb2


def settled_balance(billing, account_id: str, timeout_s: float = 20.0) -> billing_pb2.Balance:
    """The balance once no credits are reserved (or after ``timeout_s``). The jobs service asks
    Billing to confirm or release a job right after it commits the job's end, so an ended job can
    be read a moment before its credits move (longer when the settler retries a settle Billing
    missed during a fault)."""
    deadline = time.monotonic() + timeout_s
    while (b := billing.GetBalance(billing_pb2.GetBalanceRequest(account_id=account_id), timeout=10)).reserved \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    return b
