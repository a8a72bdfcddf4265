"""Billing metrics, declared once."""

from prometheus_client import Counter

CREDITS = Counter("timbr_credits_total", "Credits moved through the ledger", ["kind"])
