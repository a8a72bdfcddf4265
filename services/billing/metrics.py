"""Billing metrics, declared once."""

from prometheus_client import Counter, Gauge

CREDITS = Counter("timbr_credits_total", "Credits moved through the ledger", ["kind"])
OUTBOX_PENDING = Gauge("timbr_billing_outbox_pending", "Credit events not yet published")
