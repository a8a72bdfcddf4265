"""Assemble the jobs service: database, billing client, gRPC server and background loops."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.grpc_util import make_server
from services.common.migrate import open_database
from services.common.pb.timbr.v1 import jobs_pb2
from services.common.pb.timbr.v1 import jobs_pb2_grpc as pb_grpc
from services.common.storage import make_storage
from services.jobs.background import EventConsumer, RetentionSweeper, Settler, Sweeper, outbox_publisher
from services.jobs.billing_client import BillingClient
from services.jobs.config import JobsSettings
from services.jobs.queue_lag import QueueLagMonitor
from services.jobs.server import JobsServicer
from services.jobs.service import JobsService


@dataclass
class JobsApp:
    service: JobsService
    server: object
    port: int
    loops: list

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
        self.server.stop(grace=2)
        for loop in self.loops:
            loop.join(timeout=10)


def start(settings: JobsSettings, background: bool = True) -> JobsApp:
    sessions = open_database("jobs", settings.database_url)
    billing = BillingClient(settings.billing_addr, settings.grpc_timeout_s, settings.service_token)
    service = JobsService(sessions, billing, storage=make_storage(settings), retention_days=settings.retention_days)
    server, port = make_server("jobs", settings.grpc_listen,
                               lambda s: pb_grpc.add_JobsServicer_to_server(JobsServicer(service), s),
                               service_token=settings.service_token,
                               service_names=(jobs_pb2.DESCRIPTOR.services_by_name["Jobs"].full_name,))
    loops = []
    if background:
        loops = [outbox_publisher(sessions, settings.kafka_bootstrap, settings.outbox_poll_s),
                 EventConsumer(service, settings.kafka_bootstrap, settings.consumer_group),
                 Settler(service, settings.settle_interval_s),
                 Sweeper(service, settings.stale_running_s, settings.stale_queued_s, settings.sweep_interval_s),
                 RetentionSweeper(service, settings.retention_sweep_interval_s, settings.outbox_keep_s),
                 QueueLagMonitor(settings.kafka_bootstrap, settings.queue_lag_interval_s)]
        for loop in loops:
            loop.start()
    return JobsApp(service, server, port, loops)
