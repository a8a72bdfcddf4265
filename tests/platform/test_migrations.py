"""Schema migrations of billing and jobs on SQLite and PostgreSQL (an empty schema each).

Upgrades an empty database to head, walks every revision down to base and up again, fails
when the models and the migrations disagree (Alembic's autogenerate comparison), and checks
that a service refuses a database its migrations have not reached.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool

from services.billing.models import Base as BillingBase
from services.common import migrate
from services.jobs.models import Base as JobsBase

METADATA = {"billing": BillingBase.metadata, "jobs": JobsBase.metadata}


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _drift(service: str, url: str) -> list:
    """What autogenerate would write: empty when the migrations match the models."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={
                "version_table": migrate.version_table(service), "compare_type": True})
            return compare_metadata(ctx, METADATA[service])
    finally:
        engine.dispose()


@pytest.mark.parametrize("service", migrate.SERVICES)
def test_one_head(service):
    """Two engineers adding a revision on the same parent make two heads: renumber before landing."""
    script = ScriptDirectory.from_config(migrate.config(service, "sqlite://"))
    assert len(script.get_heads()) == 1, f"{service} migrations have several heads: {script.get_heads()}"


@pytest.mark.parametrize("service", migrate.SERVICES)
def test_upgrade_from_empty_matches_the_models(service, db_url):
    assert not _tables(db_url) - {"sqlite_sequence"}
    migrate.upgrade(service, db_url)
    assert set(METADATA[service].tables) <= _tables(db_url)
    assert migrate.version_table(service) in _tables(db_url)
    assert _drift(service, db_url) == [], "models changed without a migration (see docs/migrations.md)"


@pytest.mark.parametrize("service", migrate.SERVICES)
def test_downgrade_upgrade_round_trip_every_revision(service, db_url):
    """Each revision's downgrade undoes its upgrade: step down to base and up again, one at a time."""
    cfg = migrate.config(service, db_url)
    revisions = [r.revision for r in ScriptDirectory.from_config(cfg).walk_revisions()]  # head first
    command.upgrade(cfg, "head")
    for _ in revisions:
        command.downgrade(cfg, "-1")
    assert _tables(db_url) - {"sqlite_sequence"} <= {migrate.version_table(service)}
    for _ in revisions:
        command.upgrade(cfg, "+1")
        command.downgrade(cfg, "-1")
        command.upgrade(cfg, "+1")
    assert _drift(service, db_url) == []


def test_drift_is_detected(db_url):
    """The drift check can fail: a model column the migrations lack shows up."""
    from sqlalchemy import Column, Integer, MetaData, String, Table

    migrate.upgrade("billing", db_url)
    changed = MetaData()
    for table in BillingBase.metadata.tables.values():
        table.to_metadata(changed)
    Table("accounts", changed, Column("plan", String(20)), extend_existing=True)
    Table("brand_new", changed, Column("id", Integer, primary_key=True))
    engine = create_engine(db_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": migrate.version_table("billing")})
            diff = compare_metadata(ctx, changed)
    finally:
        engine.dispose()
    kinds = {(d[0], getattr(d[-1], "name", None)) for d in diff if isinstance(d, tuple)}
    assert ("add_column", "plan") in kinds and ("add_table", "brand_new") in kinds


def test_services_share_a_database_with_separate_version_tables(db_url):
    migrate.upgrade("billing", db_url)
    migrate.upgrade("jobs", db_url)
    engine = create_engine(db_url, poolclass=pool.NullPool)
    try:
        for service in migrate.SERVICES:
            script = ScriptDirectory.from_config(migrate.config(service, db_url))
            assert migrate.current_heads(engine, service) == set(script.get_heads())
    finally:
        engine.dispose()
    migrate.downgrade("jobs", db_url, "base")
    assert set(BillingBase.metadata.tables) <= _tables(db_url)
    assert not set(JobsBase.metadata.tables) & _tables(db_url)


def test_service_refuses_an_unmigrated_database(db_url):
    engine = create_engine(db_url, poolclass=pool.NullPool)
    try:
        with pytest.raises(migrate.SchemaNotCurrent, match="upgrade head"):
            migrate.require_current(engine, "jobs")
        migrate.upgrade("jobs", db_url)
        migrate.require_current(engine, "jobs")
        # A revision this code does not know (a newer release, then a rollback) is accepted.
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE {migrate.version_table('jobs')} SET version_num = 'fromthefuture'")
        migrate.require_current(engine, "jobs")
    finally:
        engine.dispose()


def test_command_line_upgrades_with_the_service_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli' / 'billing.db'}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TIMBR_")}, "TIMBR_DATABASE_URL": url}
    run = subprocess.run([sys.executable, "-m", "services.common.migrate", "billing", "upgrade", "head"],
                         check=False, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert set(BillingBase.metadata.tables) <= _tables(url)
    current = subprocess.run([sys.executable, "-m", "services.common.migrate", "billing", "current"],
                             check=False, env=env, capture_output=True, text=True, timeout=120)
    assert "(head)" in current.stdout
