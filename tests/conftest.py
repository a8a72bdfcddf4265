"""Shared fixtures: PostgreSQL schemas, the running stack, and account helpers.

PostgreSQL runs on this machine (127.0.0.1:5432, trust auth, database ``test``); each use gets
a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import psycopg
import pytest

from services.common.grpc_util import channel
from services.common.pb.timbr.v1 import billing_pb2, billing_pb2_grpc
from tests.support.billing import settled_balance

PG_DSN = os.environ.get("TIMBR_TEST_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")


class PgSchemas:
    def __init__(self) -> None:
        self.created: list[str] = []

    def new(self) -> str:
        name = f"timbr_t_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        self.created.append(name)
        params = dict(kv.split("=", 1) for kv in PG_DSN.split())
        return (f"postgresql+psycopg://{params['user']}@{params['host']}:{params['port']}/{params['dbname']}"
                f"?options=-csearch_path%3D{name}")

    def drop_all(self) -> None:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture(scope="session")
def pg_schemas():
    schemas = PgSchemas()
    yield schemas
    schemas.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, pg_schemas) -> str:
    """Both database backends, one code path."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return pg_schemas.new()


TEST_PIPELINE = {"TIMBR_WORKER_JOB_TYPES": "",
                 "TIMBR_WORKER_EXTRA_PIPELINES": "enhance=tests.support.pipelines:HalfGainPipeline"}


# The tests drive each stack from one address far faster than any client: limits out of the way,
# except where a test sets its own (tests/platform/test_rate_limits.py).
TEST_RATE_LIMITS = {"TIMBR_RATE_LIMIT_CLIENT": "100000/second", "TIMBR_RATE_LIMIT_ACCOUNT": "100000/second",
                    "TIMBR_RATE_LIMIT_AUTH_FAILURES": "100000/minute"}


@contextmanager
def running_stack(root: Path, pg_schemas: PgSchemas, worker_env: dict | None = None, extra_env: dict | None = None):
    """The real services as processes on free ports: tansu, billing and jobs on PostgreSQL,
    the gateway, and a worker running the test pipeline for job type ``enhance``."""
    from tools.devstack import Stack

    s = Stack.on_free_ports(root, billing_db=pg_schemas.new(), jobs_db=pg_schemas.new(),
                            worker_env={**TEST_PIPELINE, **(worker_env or {})},
                            extra_env={**TEST_RATE_LIMITS, **(extra_env or {})})
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory, pg_schemas):
    with running_stack(tmp_path_factory.mktemp("stack"), pg_schemas, {"TIMBR_BACKOFF_BASE_S": "0.2"},
                    {"TIMBR_SIGNED_URL_TTL_S": "600", "TIMBR_RETENTION_SWEEP_INTERVAL_S": "1",
                     "TIMBR_WEBHOOK_BACKOFF_BASE_S": "0.4", "TIMBR_WEBHOOK_TIMEOUT_S": "1.5"}) as s:
        yield s


@pytest.fixture(scope="session")
def billing_stub(stack):
    ch = channel(f"127.0.0.1:{stack.billing_port}")
    grpc.channel_ready_future(ch).result(timeout=30)
    yield billing_pb2_grpc.BillingStub(ch)
    ch.close()


class Account:
    def __init__(self, stub, credits: int) -> None:
        self.stub = stub
        acc = stub.CreateAccount(billing_pb2.CreateAccountRequest(name=f"test-{uuid.uuid4().hex[:6]}"))
        self.account_id = acc.account_id
        self.token = stub.IssueToken(billing_pb2.IssueTokenRequest(account_id=acc.account_id)).token
        if credits:
            stub.GrantCredits(billing_pb2.GrantCreditsRequest(account_id=acc.account_id, credits=credits))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.token}

    def balance(self) -> billing_pb2.Balance:
        return self.stub.GetBalance(billing_pb2.GetBalanceRequest(account_id=self.account_id))

    def settled_balance(self, timeout_s: float = 20.0) -> billing_pb2.Balance:
        """The balance once this account's ended jobs are settled (tests.support.billing)."""
        return settled_balance(self.stub, self.account_id, timeout_s)

    def ledger(self) -> list[billing_pb2.LedgerEntry]:
        return list(self.stub.ListLedger(billing_pb2.ListLedgerRequest(account_id=self.account_id,
                                                                       limit=500)).entries)


@pytest.fixture
def make_account(billing_stub):
    return lambda credits=1000: Account(billing_stub, credits)


@pytest.fixture
def api(stack):
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        yield client
