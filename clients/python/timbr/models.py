"""What the API returns, as small typed objects; ``raw`` keeps the whole JSON document."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class File:
    file_id: str
    filename: str
    kind: str
    duration: float
    sample_rate: int
    channels: int
    format: str
    size_bytes: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> File:
        return cls(d["file_id"], d.get("filename", ""), d.get("kind", "audio"), d.get("duration", 0.0),
                   d.get("sample_rate", 0), d.get("channels", 0), d.get("format", ""), d.get("size_bytes", 0), d)


@dataclass(frozen=True)
class Result:
    name: str
    url: str | None          # null in a job list when storage could not sign it at that moment
    content_type: str
    size_bytes: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Result:
        return cls(d["name"], d.get("url"), d.get("content_type", ""), d.get("size_bytes", 0))


@dataclass(frozen=True)
class Job:
    job_id: str
    job_type: str
    status: str
    progress: float
    stage: str
    credits_reserved: int
    error: dict[str, Any] | None
    results: tuple[Result, ...]
    viewer_url: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Job:
        return cls(d["job_id"], d.get("job_type", ""), d["status"], float(d.get("progress", 0.0)),
                   d.get("stage", ""), d.get("credits_reserved", 0), d.get("error"),
                   tuple(Result.from_json(r) for r in d.get("results") or ()), d.get("viewer_url"), d)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def result(self, name: str) -> Result:
        """The result called ``name``, or the first whose name starts with ``name.`` ("enhanced")."""
        for r in self.results:
            if r.name == name or r.name.startswith(name + "."):
                return r
        raise KeyError(f"job {self.job_id} has no result {name!r}: {[r.name for r in self.results]}")


@dataclass(frozen=True)
class Account:
    account_id: str
    name: str
    available_credits: int
    reserved_credits: int
    spent_credits: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Account:
        return cls(d["account_id"], d.get("name", ""), d["available_credits"], d["reserved_credits"],
                   d["spent_credits"])
