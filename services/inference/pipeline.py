"""What a pipeline is, as the worker runtime sees it.

A pipeline is a class built once per worker process with a ``ModelClient`` (it loads nothing
itself: models are reached by name). ``run(ctx)`` reads the job's input files, writes its
results into ``ctx.workdir`` and returns them as ``ResultFile``s; the runtime uploads them
under ``silver/{account}/{job_id}/`` and reports them on the job. Progress goes through
``ctx.hook`` (see ``ProgressHook``), never through Kafka code inside the steps.

Raise ``PipelineError`` (services.inference.errors) for failures that retrying cannot fix
(bad audio, bad parameters); anything else is retried with backoff by the runtime.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from services.inference.model_client import ModelClient


class ProgressHook(Protocol):
    """Called by pipeline steps: ``hook("denoise", completed=3, total=10)``."""

    def __call__(self, step: str, artifact: Any = None, *, completed: float | None = None,
                 total: float | None = None) -> None: ...


def noop_hook(step: str, artifact: Any = None, *, completed: float | None = None,
              total: float | None = None) -> None:
    """Default hook, so steps never test for None."""


@dataclass
class JobContext:
    job_id: str
    account_id: str
    job_type: str
    params: dict[str, Any]                 # the validated API parameters, defaults applied
    inputs: dict[str, Path]                # "file" always; "input_srt" for diarize when given
    workdir: Path                          # scratch and output folder, emptied by the runtime
    hook: ProgressHook = noop_hook

    @property
    def input_path(self) -> Path:
        return self.inputs["file"]


@dataclass
class ResultFile:
    name: str                              # object name under silver/{account}/{job_id}/, e.g. "speech.wav"
    path: Path                             # local file written by the pipeline
    content_type: str = "application/octet-stream"
    metadata: dict[str, Any] = field(default_factory=dict)


class Pipeline(ABC):
    job_type: ClassVar[str]
    # Named steps in order; the runtime turns hook calls into overall progress 0..1.
    steps: ClassVar[tuple[str, ...]] = ()

    def __init__(self, models: ModelClient) -> None:
        self.models = models

    @abstractmethod
    def run(self, ctx: JobContext) -> list[ResultFile]: ...
