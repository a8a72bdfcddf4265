"""What a pipeline is, as the worker runtime sees it.

A pipeline is a class built once per worker process with a ``ModelClient`` (models are reached
by name), then ``load()``-ed once before the worker reports ready. ``run(ctx)`` reads the job's
input files, writes its results into ``ctx.workdir`` and returns them as ``ResultFile``s; the
runtime uploads them under ``silver/{account}/{job_id}/`` and reports them on the job.
``ctx.params`` is the job's typed parameter model (``services.common.params``), parsed once by
the runtime with ``parse_params``: pipelines never see a dict. Progress goes through
``ctx.hook`` (see ``ProgressHook``), never through Kafka code inside the steps.

Raise the errors of ``services.inference.errors`` (``InvalidAudio``, ``InvalidParams`` ...)
for failures that retrying cannot fix; anything else is retried with backoff by the runtime.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from services.common.params import PARAMS_BY_JOB_TYPE
from services.inference.errors import InvalidParams, UnsupportedJobType
from services.inference.model_client import ModelClient

P = TypeVar("P", bound=BaseModel)


class ProgressHook(Protocol):
    """Called by pipeline steps: ``hook("denoise", completed=3, total=10)``."""

    def __call__(self, step: str, artifact: Any = None, *, completed: float | None = None,
                 total: float | None = None) -> None: ...


def noop_hook(step: str, artifact: Any = None, *, completed: float | None = None,
              total: float | None = None) -> None:
    """Default hook, so steps never test for None."""


def parse_params(job_type: str, raw: str | Mapping[str, Any]) -> BaseModel:
    """The job's parameters as the contract's typed model (defaults applied), or ``InvalidParams``."""
    model = PARAMS_BY_JOB_TYPE.get(job_type)
    if model is None:
        raise UnsupportedJobType(job_type)
    try:
        data = json.loads(raw or "{}") if isinstance(raw, str) else dict(raw)
        return model.model_validate(data)
    except (ValidationError, ValueError) as exc:
        raise InvalidParams(str(exc)) from exc


@dataclass
class JobContext(Generic[P]):
    job_id: str
    account_id: str
    job_type: str
    params: P                              # the contract's model for job_type, validated, defaults applied
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

    def load(self) -> None:
        """Prepare what every job needs, once, before the worker reports ready; raise if it cannot."""

    @abstractmethod
    def run(self, ctx: JobContext) -> list[ResultFile]: ...
