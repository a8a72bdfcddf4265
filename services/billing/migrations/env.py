"""Alembic environment of the billing service (see services/common/migrate.py)."""

from alembic import context

from services.billing.models import Base
from services.common.migrate import run_environment

run_environment(context, Base.metadata)
