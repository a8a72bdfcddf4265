"""Schema migrations (Alembic) of the services that own a database: billing and jobs.

Each service has its own migration environment (``services/<service>/migrations``) and its own
version table (``alembic_version_<service>``), so the two may share a database or use two.
Services never create tables: ``make run`` and the Helm chart's pre-install/pre-upgrade hook run

    python -m services.common.migrate billing upgrade head
    python -m services.common.migrate jobs upgrade head

and a service refuses to start on a database behind its code (``require_current``). Every other
Alembic command works the same way (``revision --autogenerate -m "..."``, ``downgrade -1``,
``current``, ``history``, ``check``); the database URL is the service's ``TIMBR_DATABASE_URL``
unless ``--url`` is given. docs/migrations.md says how to add one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alembic import command
from alembic.config import CommandLine, Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, MetaData, create_engine, pool
from sqlalchemy.orm import sessionmaker

from services.common.db import make_engine

SERVICES = ("billing", "jobs")


class SchemaNotCurrent(RuntimeError):
    """The database is behind the code: the migration step of the deployment has not run."""


def version_table(service: str) -> str:
    return f"alembic_version_{service}"


def _default_url(service: str) -> str:
    if service == "billing":
        from services.billing.config import BillingSettings

        return BillingSettings().database_url
    from services.jobs.config import JobsSettings

    return JobsSettings().database_url


def config(service: str, url: str | None = None) -> Config:
    """The Alembic configuration of one service, built in code (no alembic.ini to keep in sync)."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parents[1] / service / "migrations"))
    # URLs may hold '%' (percent-encoded options), which the ini interpolation would mangle.
    cfg.attributes["url"] = url or _default_url(service)
    cfg.attributes["service"] = service
    return cfg


def upgrade(service: str, url: str, revision: str = "head") -> None:
    command.upgrade(config(service, url), revision)


def downgrade(service: str, url: str, revision: str) -> None:
    command.downgrade(config(service, url), revision)


def open_database(service: str, url: str) -> sessionmaker:
    """The session factory a service runs on, once its database is known to be migrated."""
    engine = make_engine(url)
    require_current(engine, service)
    return sessionmaker(engine, expire_on_commit=False)


def migrated_sessionmaker(service: str, url: str) -> sessionmaker:
    """Upgrade the database to head, then a session factory on it (tests and embedded use)."""
    upgrade(service, url)
    return sessionmaker(make_engine(url), expire_on_commit=False)


def current_heads(engine: Engine, service: str) -> set[str]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": version_table(service)})
        return set(ctx.get_current_heads())


def require_current(engine: Engine, service: str) -> None:
    """Refuse to serve on a database that misses migrations of this code.

    A database ahead of the code (a revision this code does not know, as after a rollback of
    the release) is accepted: migrations only add what old code can ignore.
    """
    script = ScriptDirectory.from_config(config(service, "unused://"))
    heads = set(script.get_heads())
    current = current_heads(engine, service)
    if current == heads:
        return
    known = set()
    for rev in current:
        try:
            if script.get_revision(rev) is not None:
                known.add(rev)
        except CommandError:
            return  # written by a newer release
    missing = {r.revision for h in heads for r in script.iterate_revisions(h, "base")}
    for rev in known:
        missing -= {r.revision for r in script.iterate_revisions(rev, "base")}
    if missing:
        raise SchemaNotCurrent(
            f"the {service} database is at {sorted(current) or 'no revision'}, this code needs {sorted(heads)}: "
            f"run `python -m services.common.migrate {service} upgrade head`")


def run_environment(context, metadata: MetaData) -> None:
    """Body of each service's ``migrations/env.py``: offline (SQL script) or online."""
    cfg = context.config
    service = cfg.attributes["service"]
    url = cfg.attributes["url"]
    # Batch mode: SQLite alters a table by copying it; the same script runs plainly on PostgreSQL.
    opts = {"target_metadata": metadata, "version_table": version_table(service), "compare_type": True,
            "render_as_batch": True}
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"}, **opts)
        with context.begin_transaction():
            context.run_migrations()
        return
    if url.startswith("sqlite"):
        make_engine(url).dispose()  # creates the parent directory of the file
    # Foreign keys stay off (SQLite's default) so that batch mode may copy referenced tables.
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **opts)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m services.common.migrate",
        description="Alembic for one Timbr service, e.g. `billing upgrade head` or "
                    "`jobs revision --autogenerate -m 'add column'`.")
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--url", help="database URL (default: the service's TIMBR_DATABASE_URL)")
    args, rest = parser.parse_known_args(argv)
    alembic_cli = CommandLine(prog=f"python -m services.common.migrate {args.service}")
    options = alembic_cli.parser.parse_args(rest)
    if not hasattr(options, "cmd"):
        alembic_cli.parser.error("too few arguments")
    cfg = config(args.service, args.url)
    cfg.cmd_opts = options
    alembic_cli.run_cmd(cfg, options)


if __name__ == "__main__":
    main(sys.argv[1:])
