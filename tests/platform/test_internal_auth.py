"""Internal trust: billing and jobs refuse gRPC callers without the shared service token, and
start-up refuses public secrets and default database credentials outside env=local.

Issue 11: GrantCredits with no credentials granted 1,000,000 credits; production relied on a
NetworkPolicy alone, and the public development signing secret was one unset variable away.
"""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from services.billing.config import BillingSettings
from services.billing.server import BillingServicer
from services.billing.service import BillingService
from services.common.grpc_util import channel, make_server
from services.common.migrate import migrated_sessionmaker
from services.common.pb.timbr.v1 import billing_pb2, billing_pb2_grpc, jobs_pb2, jobs_pb2_grpc
from services.gateway.config import GatewaySettings
from services.inference.config import WorkerSettings
from services.jobs.app import start as start_jobs
from services.jobs.config import JobsSettings

TOKEN = "t" * 40


@pytest.fixture
def billing_server(tmp_path):
    service = BillingService(migrated_sessionmaker("billing", f"sqlite:///{tmp_path / 'billing.db'}"))
    server, port = make_server("billing", "127.0.0.1:0", lambda s: billing_pb2_grpc.add_BillingServicer_to_server(
        BillingServicer(service), s), service_token=TOKEN)
    yield service, f"127.0.0.1:{port}"
    server.stop(0)


def _codes(addr: str, token: str, account_id: str) -> grpc.StatusCode:
    with channel(addr, token) as ch:
        try:
            billing_pb2_grpc.BillingStub(ch).GrantCredits(
                billing_pb2.GrantCreditsRequest(account_id=account_id, credits=1_000_000), timeout=5)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()


def test_billing_refuses_callers_without_the_service_token(billing_server):
    service, addr = billing_server
    acc = service.create_account("victim").account_id
    for token in ("", "wrong-token-" + "x" * 30, TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        assert _codes(addr, token, acc) == grpc.StatusCode.UNAUTHENTICATED, token
    assert service.balance(acc).available == 0
    assert _codes(addr, TOKEN, acc) == grpc.StatusCode.OK
    assert service.balance(acc).available == 1_000_000


def test_the_health_check_stays_open_for_probes(billing_server):
    _, addr = billing_server
    with channel(addr) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_jobs_refuses_callers_without_the_service_token_and_sends_it_to_billing(billing_server, tmp_path):
    service, billing_addr = billing_server
    acc = service.create_account("a").account_id
    service.grant(acc, 10)
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrated_sessionmaker("jobs", url)
    app = start_jobs(JobsSettings(database_url=url, grpc_listen="127.0.0.1:0", billing_addr=billing_addr,
                                  service_token=TOKEN), background=False)
    try:
        addr = f"127.0.0.1:{app.port}"
        f = jobs_pb2.File(file_id="f1", account_id=acc, storage_key="bronze/x", duration_s=2.0)
        with channel(addr) as ch:
            with pytest.raises(grpc.RpcError) as err:
                jobs_pb2_grpc.JobsStub(ch).RegisterFile(jobs_pb2.RegisterFileRequest(file=f), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with channel(addr, TOKEN) as ch:
            stub = jobs_pb2_grpc.JobsStub(ch)
            stub.RegisterFile(jobs_pb2.RegisterFileRequest(file=f), timeout=5)
            job = stub.CreateJob(jobs_pb2.CreateJobRequest(account_id=acc, job_type="enhance",
                                                           input_file_ids={"file": "f1"}), timeout=10)
        assert job.credits_reserved == 2 and service.balance(acc).reserved == 2  # jobs -> billing carried it
    finally:
        app.stop()


PRODUCTION = {"env": "production", "signing_secret": "s" * 48, "service_token": TOKEN}


@pytest.mark.parametrize("settings_cls", [GatewaySettings, WorkerSettings, BillingSettings, JobsSettings])
def test_production_start_up_refuses_public_secrets(settings_cls):
    settings_cls(**PRODUCTION, database_url="postgresql+psycopg://billing:Zq8-real@pg/billing")
    with pytest.raises(ValidationError, match="TIMBR_SIGNING_SECRET"):
        settings_cls(**{**PRODUCTION, "signing_secret": "dev-only-signing-secret-change-me"})
    for token in ("", "short"):
        with pytest.raises(ValidationError, match="TIMBR_SERVICE_TOKEN"):
            settings_cls(**{**PRODUCTION, "service_token": token})
    local = settings_cls()  # env=local: the development defaults are fine
    assert local.env == "local" and local.service_token == ""


@pytest.mark.parametrize("settings_cls", [BillingSettings, JobsSettings])
@pytest.mark.parametrize("url", ["postgresql+psycopg://timbr:timbr@postgresql:5432/timbr_billing",
                                 "postgresql+psycopg://postgres:postgres@db/x", "postgresql://app:app@db/x",
                                 "postgresql+psycopg://u:password@db/x"])
def test_production_start_up_refuses_default_database_credentials(settings_cls, url):
    with pytest.raises(ValidationError, match="default credentials"):
        settings_cls(**PRODUCTION, database_url=url)
    assert settings_cls(database_url=url).env == "local"  # make run and the tests


def test_docs_and_metrics_can_be_kept_off_the_public_api():
    from fastapi.testclient import TestClient

    from services.gateway.app import create_app

    public = TestClient(create_app(GatewaySettings()))
    assert [public.get(p).status_code for p in ("/docs", "/openapi.json", "/metrics")] == [200, 200, 200]
    closed = TestClient(create_app(GatewaySettings(docs_enabled=False, metrics_port=9100)))
    assert [closed.get(p).status_code for p in ("/docs", "/openapi.json", "/metrics")] == [404, 404, 404]
    assert closed.get("/healthz").status_code == 200
