"""The inference worker: a Kafka consumer that runs pipelines and reports job events.

Guarantee: at-least-once. Auto-commit is off; a request's offset is committed only after the
job's end event (completed or failed) has been acknowledged by the broker. A worker that dies
mid-job leaves the offset uncommitted, the group rebalances, and another worker runs the job
again. That is safe because:
- results are written under deterministic keys ``silver/{account}/{job_id}/{name}`` (a rerun
  overwrites them whole, atomically per object);
- the worker asks the jobs service first and skips jobs already finished or cancelled;
- the jobs service applies events idempotently and Billing charges a job at most once.

Within one delivery a transient failure is retried with exponential backoff
(``max_attempts``); a job that still fails, or that has crashed workers ``max_deliveries``
times, fails for good with its credits released, and its request goes to the dead-letter topic.
``PipelineError`` (bad audio, bad parameters) fails at once.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from services.common.audio import InvalidAudio
from services.common.grpc_util import channel
from services.common.kafka import headers, job_event_type, make_consumer, make_producer
from services.common.logging import bound_contextvars, get_logger
from services.common.pb.timbr.v1 import events_pb2, jobs_pb2, jobs_pb2_grpc
from services.common.settings import TOPIC_DLQ, TOPIC_EVENTS, TOPIC_REQUESTED
from services.common.storage import Storage
from services.inference import metrics
from services.inference.config import WorkerSettings
from services.inference.errors import PipelineError, UnknownJobType
from services.inference.model_client import ModelClient
from services.inference.pipeline import JobContext, Pipeline

log = get_logger(__name__)
_DONE = (jobs_pb2.JOB_STATUS_COMPLETED, jobs_pb2.JOB_STATUS_FAILED, jobs_pb2.JOB_STATUS_CANCELLED)


class JobCancelled(Exception):
    """The job was cancelled (or finished elsewhere) while this worker ran it."""


def load_pipelines(targets: dict[str, str], models: ModelClient) -> dict[str, Pipeline]:
    """Build each pipeline once per process; a pipeline that cannot load is logged and skipped."""
    pipelines = {}
    for job_type, target in targets.items():
        module, _, attr = target.partition(":")
        try:
            pipelines[job_type] = getattr(importlib.import_module(module), attr)(models)
        except Exception:
            log.exception("pipeline.load_failed", job_type=job_type, target=target)
    return pipelines


class EventReporter:
    """Sends job events for one job; progress is throttled, end events wait for the broker."""

    def __init__(self, producer, request: events_pb2.JobRequested, worker_id: str, attempt: int,
                 steps: tuple[str, ...]) -> None:
        self._producer = producer
        self._req = request
        self._worker_id = worker_id
        self._attempt = attempt
        self._steps = steps
        self._last_sent = 0.0
        self.progress = 0.0
        self.stage = "started"

    def _event(self, type_, **fields) -> events_pb2.JobEvent:
        at = Timestamp()
        at.GetCurrentTime()
        return events_pb2.JobEvent(event_id=uuid.uuid4().hex, job_id=self._req.job_id,
                                   account_id=self._req.account_id, job_type=self._req.job_type, type=type_,
                                   attempt=self._attempt, worker_id=self._worker_id, emitted_at=at, **fields)

    def send(self, event: events_pb2.JobEvent, wait: bool) -> None:
        future = self._producer.send(TOPIC_EVENTS, key=event.job_id, value=event.SerializeToString(),
                                     headers=headers(job_event_type(event.type), self._req.request_id))
        if wait:
            future.get(timeout=30)

    def running(self) -> None:
        self.send(self._event(events_pb2.EVENT_TYPE_RUNNING, stage="started"), wait=True)

    def hook(self, step: str, artifact=None, *, completed: float | None = None, total: float | None = None) -> None:
        """A ``ProgressHook``: maps (step, completed/total) onto overall progress 0..1."""
        within = (completed / total) if completed is not None and total else 0.0
        if step in self._steps:
            overall = (self._steps.index(step) + min(max(within, 0.0), 1.0)) / len(self._steps)
        else:
            overall = self.progress
        self.progress = max(self.progress, min(overall, 0.99))
        changed = step != self.stage
        self.stage = step
        now = time.monotonic()
        if changed or now - self._last_sent >= 0.5:
            self.heartbeat()

    def heartbeat(self) -> None:
        self._last_sent = time.monotonic()
        self.send(self._event(events_pb2.EVENT_TYPE_PROGRESS, progress=self.progress, stage=self.stage), wait=False)

    def completed(self, results: list[events_pb2.ResultObject], processing_s: float) -> None:
        self.send(self._event(events_pb2.EVENT_TYPE_COMPLETED, progress=1.0, stage="done", results=results,
                              processing_s=processing_s), wait=True)

    def failed(self, code: str, message: str) -> None:
        self.send(self._event(events_pb2.EVENT_TYPE_FAILED, stage=self.stage, error_code=code,
                              error_message=message[:2000]), wait=True)


class Worker:
    def __init__(self, settings: WorkerSettings, pipelines: dict[str, Pipeline], storage: Storage,
                 jobs: jobs_pb2_grpc.JobsStub) -> None:
        self.settings = settings
        self.pipelines = pipelines
        self.storage = storage
        self.jobs = jobs
        self.worker_id = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.job_types = sorted(set(settings.job_types) | set(settings.extra_pipelines))
        self.group = "timbr-inference-" + "+".join(self.job_types)
        self._stop = threading.Event()
        self._producer = make_producer(settings.kafka_bootstrap)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Poll, and run each job in a helper thread while the main thread keeps polling with
        the partitions paused: the member stays in its group (heartbeats, rebalances) however
        long the job takes, so a short max_poll_interval keeps rebalances quick."""
        consumer = make_consumer(self.settings.kafka_bootstrap, self.group, TOPIC_REQUESTED,
                                 client_id=self.worker_id)
        log.info("worker.started", group=self.group, job_types=self.job_types, pipelines=sorted(self.pipelines))
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job")
        try:
            while not self._stop.is_set():
                for tp, records in consumer.poll(timeout_ms=500, max_records=1).items():
                    for record in records:
                        self._process(consumer, executor, tp, record)
        finally:
            executor.shutdown(wait=True)
            consumer.close()
            self._producer.close(timeout=5)

    def _process(self, consumer, executor: ThreadPoolExecutor, tp, record) -> None:
        future = executor.submit(self.handle, record.value)
        while not future.done():
            consumer.pause(*consumer.assignment())  # again after any rebalance
            for other_tp, others in consumer.poll(timeout_ms=200).items():
                consumer.seek(other_tp, others[0].offset)  # fetched before the pause: read it later
        consumer.resume(*consumer.paused())
        future.result()  # a handler error stops the worker without committing: redelivered
        try:
            consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
        except KafkaError:
            # The partition moved to another member meanwhile; it may run the job again, which
            # is safe (the job is finished, so it is skipped).
            log.warning("worker.commit_failed", partition=tp.partition, offset=record.offset)

    def _job_status(self, job_id: str) -> jobs_pb2.Job | None:
        try:
            return self.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id), timeout=10)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def handle(self, payload: bytes) -> str:
        """Process one request message; returns the outcome. Raises only when the offset must not move."""
        request = events_pb2.JobRequested.FromString(payload)
        if request.job_type not in self.job_types:
            return "not_mine"
        with bound_contextvars(job_id=request.job_id, account=request.account_id, job_type=request.job_type,
                               request_id=request.request_id):
            job = self._job_status(request.job_id)
            if job is None or job.status in _DONE:
                log.info("job.skipped", reason="unknown" if job is None else "finished")
                return "skipped"
            delivery = job.attempts + 1 if job.status == jobs_pb2.JOB_STATUS_RUNNING else 1
            pipeline = self.pipelines.get(request.job_type)
            reporter = EventReporter(self._producer, request, self.worker_id, delivery,
                                     pipeline.steps if pipeline else ())
            if pipeline is None:
                reporter.failed(UnknownJobType(request.job_type).code, str(UnknownJobType(request.job_type)))
                metrics.JOBS_PROCESSED.labels(request.job_type, "failed").inc()
                return "failed"
            if delivery > self.settings.max_deliveries:
                self._give_up(reporter, request, "worker_crashed",
                              f"the job stopped its worker {delivery - 1} times and was abandoned")
                return "failed"
            reporter.running()
            return self._run_with_retries(pipeline, request, reporter)

    def _run_with_retries(self, pipeline: Pipeline, request, reporter: EventReporter) -> str:
        last_error = ""
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                started = time.perf_counter()
                results = self._run_once(pipeline, request, reporter)
                elapsed = time.perf_counter() - started
                reporter.completed(results, elapsed)
                metrics.JOBS_PROCESSED.labels(request.job_type, "completed").inc()
                metrics.PIPELINE_SECONDS.labels(request.job_type).observe(elapsed)
                if request.duration_s > 0:
                    metrics.REALTIME_FACTOR.labels(request.job_type).observe(elapsed / request.duration_s)
                log.info("job.completed", seconds=round(elapsed, 3), results=len(results))
                return "completed"
            except JobCancelled:
                log.info("job.cancelled_while_running")
                metrics.JOBS_PROCESSED.labels(request.job_type, "cancelled").inc()
                return "cancelled"
            except PipelineError as exc:
                log.warning("job.failed", code=exc.code, error=exc.message)
                reporter.failed(exc.code, exc.message)
                metrics.JOBS_PROCESSED.labels(request.job_type, "failed").inc()
                return "failed"
            except Exception as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                log.exception("job.attempt_failed", attempt=attempt)
                if attempt < self.settings.max_attempts:
                    time.sleep(self.settings.backoff_base_s * 2 ** (attempt - 1))
        self._give_up(reporter, request, "processing_failed",
                      f"processing failed after {self.settings.max_attempts} attempts: {last_error}")
        return "failed"

    def _give_up(self, reporter: EventReporter, request, code: str, message: str) -> None:
        self._producer.send(TOPIC_DLQ, key=request.job_id, value=request.SerializeToString(),
                            headers=headers("job.dead_lettered", request.request_id, error=message[:500])
                            ).get(timeout=30)
        reporter.failed(code, message)
        metrics.JOBS_PROCESSED.labels(request.job_type, "failed").inc()
        log.error("job.dead_lettered", code=code, error=message)

    def _run_once(self, pipeline: Pipeline, request, reporter: EventReporter) -> list[events_pb2.ResultObject]:
        workdir = Path(self.settings.workdir) / request.job_id
        shutil.rmtree(workdir, ignore_errors=True)
        (workdir / "in").mkdir(parents=True)
        (workdir / "out").mkdir()
        stop_beats = threading.Event()
        beats = threading.Thread(target=self._beat, args=(reporter, stop_beats, request.job_id), daemon=True)
        beats.start()
        try:
            inputs = {}
            for name, obj in request.inputs.items():
                local = self.storage.local_path(obj.storage_key)
                if local is None:
                    local = self.storage.download_to(obj.storage_key, workdir / "in" / Path(obj.storage_key).name)
                inputs[name] = local
            ctx = JobContext(job_id=request.job_id, account_id=request.account_id, job_type=request.job_type,
                             params=json.loads(request.params_json or "{}"), inputs=inputs,
                             workdir=workdir / "out", hook=self._hook(reporter, request.job_id))
            try:
                files = pipeline.run(ctx)
            except InvalidAudio as exc:
                raise PipelineError("invalid_audio", str(exc)) from exc
            if self._cancelled(request.job_id):
                raise JobCancelled()
            results = []
            for f in files:
                key = f"silver/{request.account_id}/{request.job_id}/{f.name}"
                size = self.storage.put_file(key, f.path, f.content_type)
                results.append(events_pb2.ResultObject(name=f.name, storage_key=key, content_type=f.content_type,
                                                       size_bytes=size))
            return results
        finally:
            stop_beats.set()
            beats.join(timeout=5)
            shutil.rmtree(workdir, ignore_errors=True)

    def _hook(self, reporter: EventReporter, job_id: str):
        last_check = [time.monotonic()]
        last_step = [("", time.perf_counter())]

        def hook(step, artifact=None, *, completed=None, total=None):
            prev, since = last_step[0]
            if step != prev:
                if prev:
                    metrics.STAGE_SECONDS.labels(reporter._req.job_type, prev).observe(time.perf_counter() - since)
                last_step[0] = (step, time.perf_counter())
            reporter.hook(step, artifact, completed=completed, total=total)
            if time.monotonic() - last_check[0] >= self.settings.cancel_check_s:
                last_check[0] = time.monotonic()
                if self._cancelled(job_id):
                    raise JobCancelled()

        return hook

    def _cancelled(self, job_id: str) -> bool:
        try:
            job = self._job_status(job_id)
        except grpc.RpcError:
            return False  # the jobs service being away is no reason to stop working
        return job is None or job.status in _DONE

    def _beat(self, reporter: EventReporter, stop: threading.Event, job_id: str) -> None:
        """Keep the job fresh for the jobs service's sweeper while a long step runs."""
        while not stop.wait(self.settings.heartbeat_s):
            try:
                reporter.heartbeat()
            except Exception:  # noqa: BLE001
                log.warning("job.heartbeat_failed")


def build_worker(settings: WorkerSettings) -> Worker:
    from services.common.storage import make_storage
    from services.inference.pipelines import PIPELINES

    models = make_model_client(settings)
    targets = {t: PIPELINES[t] for t in settings.job_types if t in PIPELINES}
    targets.update(settings.extra_pipelines)
    pipelines = load_pipelines(targets, models)
    jobs = jobs_pb2_grpc.JobsStub(channel(settings.jobs_addr, settings.service_token))
    return Worker(settings, pipelines, make_storage(settings), jobs)


def make_model_client(settings: WorkerSettings) -> ModelClient:
    """In-process models by default; a Triton/KServe endpoint with TIMBR_MODEL_BACKEND=remote."""
    import services.inference.models  # noqa: F401 - fills the model registry

    if settings.model_backend == "remote":
        from services.inference.remote_client import make_model_client as remote

        return remote(settings)
    from services.inference.model_client import InProcessModelClient

    return InProcessModelClient()

