"""Helpers for the diarize tests (imported by them; not a pytest conftest on purpose, so it
cannot clash with other areas' fixtures)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import services.inference.models  # noqa: F401 - registers the models
from services.inference.model_client import InProcessModelClient
from services.inference.pipeline import JobContext, parse_params
from services.inference.pipelines.diarize import DiarizePipeline

_CLIENT: InProcessModelClient | None = None


def client() -> InProcessModelClient:
    """One model client per test process: each model loads once."""
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = InProcessModelClient()
    return _CLIENT


@dataclass
class Run:
    files: dict[str, Path]
    result: dict[str, Any]
    events: list[tuple[str, float | None, float | None]] = field(default_factory=list)

    def srt(self, name: str = "transcript.srt") -> str:
        return self.files[name].read_text(encoding="utf-8")


def run_diarize(workdir: Path, audio: Path, srt: Path | None = None, **params: Any) -> Run:
    workdir.mkdir(parents=True, exist_ok=True)
    events: list[tuple[str, float | None, float | None]] = []

    def hook(step, artifact=None, *, completed=None, total=None):
        events.append((step, completed, total))

    inputs = {"file": audio}
    if srt is not None:
        inputs["input_srt"] = srt
    ctx = JobContext("job-1", "acct-1", "diarize", parse_params("diarize", {"file_id": "f1", **params}), inputs,
                     workdir, hook)
    files = {r.name: r.path for r in DiarizePipeline(client()).run(ctx)}
    return Run(files, json.loads(files["diarization.json"].read_text()), events)
