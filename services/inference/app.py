"""Assemble a worker from its settings: models, pipelines (loaded, or start-up fails), runner, loop."""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path

from services.common.logging import get_logger
from services.common.storage import make_storage
from services.inference.config import WorkerSettings
from services.inference.events import Publisher
from services.inference.jobs_client import JobsClient
from services.inference.model_client import ModelClient
from services.inference.pipeline import Pipeline
from services.inference.pipelines import PIPELINES
from services.inference.remote_client import make_model_client
from services.inference.retry import RetryPolicy
from services.inference.runner import JobRunner
from services.inference.worker import Worker

log = get_logger(__name__)


def load_pipelines(targets: dict[str, str], models: ModelClient) -> dict[str, Pipeline]:
    """Build and ``load()`` each pipeline once per process. A failure raises: a worker that cannot
    run one of its job types must not start (and never reports ready)."""
    pipelines = {}
    for job_type, target in targets.items():
        module, _, attr = target.partition(":")
        try:
            pipeline = getattr(importlib.import_module(module), attr)(models)
            pipeline.load()
        except Exception as exc:
            raise RuntimeError(f"pipeline {job_type!r} ({target}) failed to load: {exc}") from exc
        pipelines[job_type] = pipeline
        log.info("pipeline.loaded", job_type=job_type, target=target)
    return pipelines


def build_worker(settings: WorkerSettings) -> Worker:
    models = make_model_client(settings)
    targets = {t: PIPELINES[t] for t in settings.job_types if t in PIPELINES}
    targets.update(settings.extra_pipelines)
    job_types = sorted(set(settings.job_types) | set(settings.extra_pipelines))
    worker_id = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    runner = JobRunner(
        pipelines=load_pipelines(targets, models), storage=make_storage(settings),
        jobs=JobsClient(settings.jobs_addr, settings.grpc_timeout_s, settings.service_token),
        publisher=Publisher(settings.kafka_bootstrap, settings.event_timeout_s),
        policy=RetryPolicy(settings.max_attempts, settings.max_deliveries, settings.backoff_base_s),
        worker_id=worker_id, workdir=Path(settings.workdir), job_types=job_types,
        heartbeat_s=settings.heartbeat_s, cancel_check_s=settings.cancel_check_s)
    return Worker(runner, settings.kafka_bootstrap, "timbr-inference-" + "+".join(job_types), worker_id,
                  settings.reconnect_backoff_s, settings.reconnect_max_backoff_s)
