"""Alembic environment of the jobs service (see services/common/migrate.py)."""

from alembic import context

from services.common.migrate import run_environment
from services.jobs.models import Base

run_environment(context, Base.metadata)
