"""gRPC contract of billing and jobs as an outside client (grpcurl, grpc-health-probe) sees it:
server reflection lists and describes the services, health answers per service."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


@pytest.fixture(params=[("billing", "timbr.v1.Billing", "Reserve"), ("jobs", "timbr.v1.Jobs", "CreateJob")],
                ids=["billing", "jobs"])
def service(request, stack):
    name, full, method = request.param
    port = stack.billing_port if name == "billing" else stack.jobs_port
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:  # no service token: these are open
        yield ch, full, method


def test_reflection_describes_the_service(service):
    ch, full, method = service
    db = ProtoReflectionDescriptorDatabase(ch)
    names = set(db.get_services())
    assert {full, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
    described = db.FindFileContainingSymbol(full)
    (svc,) = [s for s in described.service if f"timbr.v1.{s.name}" == full]
    assert method in {m.name for m in svc.method}


def test_health_per_service(service):
    ch, full, _ = service
    stub = health_pb2_grpc.HealthStub(ch)
    for name in ("", full):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
    with pytest.raises(grpc.RpcError) as err:
        stub.Check(health_pb2.HealthCheckRequest(service="timbr.v1.Nope"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
