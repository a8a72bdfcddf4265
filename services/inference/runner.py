"""One job's life in a worker: ``JobRunner.handle(request)``.

    check the job      skip it when the jobs service says it ended (or never existed)
    parse params       once, through ``PARAMS_BY_JOB_TYPE`` into the typed model
    running event      then the pipeline under the ``RetryPolicy``:
      fetch inputs       into a fresh work directory
      run pipeline       with a hook for progress events, stage timings and cancellation
      store results      under ``silver/{account}/{job_id}/{name}`` (deterministic: a rerun overwrites)
    terminal event     completed, or failed with the code ``errors.job_error`` gives

A job's failures end here as a failed event; only ``DependencyUnavailable`` (the jobs
service or the broker away) leaves ``handle``, and the consumer loop then redelivers.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from pydantic import BaseModel

from services.common.errors import CodedError
from services.common.logging import bound_contextvars, get_logger
from services.common.pb.timbr.v1 import events_pb2
from services.common.storage import Storage
from services.inference import metrics
from services.inference.errors import (
    Cancelled,
    DependencyUnavailable,
    InferenceError,
    UnsupportedJobType,
    job_error,
)
from services.inference.events import JobEvents, Publisher
from services.inference.jobs_client import JobsClient
from services.inference.pipeline import JobContext, Pipeline, parse_params
from services.inference.retry import RetryPolicy

log = get_logger(__name__)


class _Hook:
    """The ``ProgressHook`` a job's pipeline calls: progress events, stage timings, cancel checks."""

    def __init__(self, events: JobEvents, job_type: str, cancelled, cancel_check_s: float) -> None:
        self._events = events
        self._job_type = job_type
        self._cancelled = cancelled
        self._cancel_check_s = cancel_check_s
        self._last_check = time.monotonic()
        self._stage, self._since = "", time.perf_counter()

    def __call__(self, step, artifact=None, *, completed=None, total=None) -> None:
        if step != self._stage:
            self.close_stage()
            self._stage, self._since = step, time.perf_counter()
        self._events.step(step, completed, total)
        if time.monotonic() - self._last_check >= self._cancel_check_s:
            self._last_check = time.monotonic()
            if self._cancelled():
                raise Cancelled()

    def close_stage(self) -> None:
        if self._stage:
            metrics.STAGE_SECONDS.labels(self._job_type, self._stage).observe(time.perf_counter() - self._since)


class JobRunner:
    def __init__(self, *, pipelines: dict[str, Pipeline], storage: Storage, jobs: JobsClient,
                 publisher: Publisher, policy: RetryPolicy, worker_id: str, workdir: Path,
                 job_types: list[str], heartbeat_s: float = 30.0, cancel_check_s: float = 5.0) -> None:
        self.pipelines = pipelines
        self.storage = storage
        self.jobs = jobs
        self.publisher = publisher
        self.policy = policy
        self.worker_id = worker_id
        self.workdir = workdir
        self.job_types = job_types
        self.heartbeat_s = heartbeat_s
        self.cancel_check_s = cancel_check_s

    def handle(self, request: events_pb2.JobRequested) -> str:
        """Run one requested job to its end event; returns the outcome. Raises only
        ``DependencyUnavailable``, when the request must be delivered again."""
        if request.job_type not in self.job_types:
            return "not_mine"
        with bound_contextvars(job_id=request.job_id, account=request.account_id, job_type=request.job_type,
                               request_id=request.request_id):
            state = self.jobs.state(request.job_id)
            if state is None or state.ended:
                log.info("job.skipped", reason="unknown" if state is None else "finished")
                return "skipped"
            delivery = state.attempts + 1 if state.running else 1
            pipeline = self.pipelines.get(request.job_type)
            events = JobEvents(self.publisher, request, self.worker_id, delivery, pipeline.steps if pipeline else ())
            try:
                if pipeline is None:
                    raise UnsupportedJobType(request.job_type)
                params = parse_params(request.job_type, request.params_json)
                self.policy.check_delivery(delivery)
                events.running()
                results, elapsed = self.policy.run(lambda: self._run_once(pipeline, params, request, events))
            except Cancelled:
                log.info("job.cancelled_while_running")
                metrics.JOBS_PROCESSED.labels(request.job_type, "cancelled").inc()
                return "cancelled"
            except DependencyUnavailable:
                raise  # not the job's failure: the consumer loop delivers it again
            except CodedError as exc:
                return self._failed(events, request, exc)
            self._completed(events, request, results, elapsed)
            return "completed"

    def _completed(self, events: JobEvents, request, results, elapsed: float) -> None:
        events.completed(results, elapsed)
        metrics.JOBS_PROCESSED.labels(request.job_type, "completed").inc()
        metrics.PIPELINE_SECONDS.labels(request.job_type).observe(elapsed)
        if request.duration_s > 0:
            metrics.REALTIME_FACTOR.labels(request.job_type).observe(elapsed / request.duration_s)
        log.info("job.completed", seconds=round(elapsed, 3), results=len(results))

    def _failed(self, events: JobEvents, request, exc: BaseException) -> str:
        failure = job_error(exc)
        if self.policy.dead_letters(exc):
            events.dead_letter(failure.message)
            log.error("job.dead_lettered", code=failure.code, error=failure.message)
        else:
            log.warning("job.failed", code=failure.code, error=failure.message)
        events.failed(failure.code, failure.message)
        metrics.JOBS_PROCESSED.labels(request.job_type, "failed").inc()
        return "failed"

    def _run_once(self, pipeline: Pipeline, params: BaseModel, request, events: JobEvents
                  ) -> tuple[list[events_pb2.ResultObject], float]:
        started = time.perf_counter()
        workdir = self.workdir / request.job_id
        shutil.rmtree(workdir, ignore_errors=True)
        (workdir / "in").mkdir(parents=True)
        (workdir / "out").mkdir()
        stop_beats = threading.Event()
        beats = threading.Thread(target=self._beat, args=(events, stop_beats), daemon=True)
        beats.start()
        hook = _Hook(events, request.job_type, lambda: self._cancelled(request.job_id), self.cancel_check_s)
        try:
            ctx = JobContext(job_id=request.job_id, account_id=request.account_id, job_type=request.job_type,
                             params=params, inputs=self._fetch_inputs(request, workdir / "in"),
                             workdir=workdir / "out", hook=hook)
            files = pipeline.run(ctx)
            hook.close_stage()
            if self._cancelled(request.job_id):
                raise Cancelled()
            return self._store(request, files), time.perf_counter() - started
        finally:
            stop_beats.set()
            beats.join(timeout=5)
            shutil.rmtree(workdir, ignore_errors=True)

    def _fetch_inputs(self, request, into: Path) -> dict[str, Path]:
        inputs = {}
        for name, obj in request.inputs.items():
            local = self.storage.local_path(obj.storage_key)
            if local is None:
                local = self.storage.download_to(obj.storage_key, into / Path(obj.storage_key).name)
            inputs[name] = local
        return inputs

    def _store(self, request, files) -> list[events_pb2.ResultObject]:
        results = []
        for f in files:
            key = f"silver/{request.account_id}/{request.job_id}/{f.name}"
            size = self.storage.put_file(key, f.path, f.content_type)
            results.append(events_pb2.ResultObject(name=f.name, storage_key=key, content_type=f.content_type,
                                                   size_bytes=size))
        return results

    def _cancelled(self, job_id: str) -> bool:
        try:
            state = self.jobs.state(job_id)
        except InferenceError:
            return False  # the jobs service being away is no reason to stop working
        return state is None or state.ended

    def _beat(self, events: JobEvents, stop: threading.Event) -> None:
        """Keep the job fresh for the jobs service's sweeper while a long step runs."""
        while not stop.wait(self.heartbeat_s):
            try:
                events.heartbeat()
            except Exception:  # noqa: BLE001
                log.warning("job.heartbeat_failed")
