"""``timbr``: the command line of the SDK.

    timbr enhance in.wav -o out.wav --eq vocal
    timbr separate in.wav --type dialogue-music-effect -o stems/
    timbr diarize in.wav --srt out.srt
    timbr jobs | timbr job JOB_ID | timbr account

Each processing command uploads (a progress bar in bytes), creates the job, follows it (a
progress bar with its stage) and downloads the results. Bars go to stderr; ``--json`` turns
them off and prints one JSON document on stdout for scripts. The token comes from
``TIMBR_TOKEN`` (or ``--token``), the server from ``TIMBR_BASE_URL`` (or ``--base-url``).
Exit status: 0 done, 1 an API error or a failed job (its code on stderr), 2 bad usage, 130
interrupted (the job itself goes on; its id is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from timbr.client import DEFAULT_BASE_URL, Timbr
from timbr.errors import APIError, JobFailed, TimbrError
from timbr.models import Job

FORMATS = ("wav", "flac", "mp3", "ogg")


class _BytesOnly(ProgressColumn):
    """Bytes done/total and speed for byte tasks; nothing for the job task."""

    def __init__(self) -> None:
        super().__init__()
        self._amount, self._speed = DownloadColumn(), TransferSpeedColumn()

    def render(self, task) -> Text:
        if not task.fields.get("bytes"):
            return Text("")
        return Text.assemble(self._amount.render(task), " ", self._speed.render(task))


class Bars:
    """Upload, job and download progress on stderr; silent with --json."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(TextColumn("{task.description:<24}"), BarColumn(), TaskProgressColumn(),
                                 _BytesOnly(), TimeElapsedColumn(),
                                 console=Console(stderr=True), disable=not enabled, transient=False)

    def __enter__(self) -> Self:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def bytes(self, label: str) -> Callable[[int, int], None]:
        task = self.progress.add_task(label, total=None, bytes=True)
        return lambda done, total: self.progress.update(task, completed=done, total=total or None)

    def job(self, label: str) -> Callable[[Job], None]:
        task = self.progress.add_task(label, total=100)

        def update(job: Job) -> None:
            stage = job.stage if job.status == "running" and job.stage else job.status
            done = 100 if job.status == "completed" else round(job.progress * 100)
            self.progress.update(task, completed=done, description=f"{label}: {stage}"[:24])
        return update


def _parser() -> argparse.ArgumentParser:
    def common(suppress: bool) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(add_help=False)
        default = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
        p.add_argument("--base-url", default=default(os.environ.get("TIMBR_BASE_URL", DEFAULT_BASE_URL)),
                       help="API root (env TIMBR_BASE_URL)")
        p.add_argument("--token", default=default(os.environ.get("TIMBR_TOKEN")), help="API token (env TIMBR_TOKEN)")
        p.add_argument("--json", action="store_true", default=default(False),
                       help="print one JSON document on stdout, no progress bars")
        return p

    parser = argparse.ArgumentParser(prog="timbr", description="Timbr audio API from the command line",
                                     parents=[common(False)])
    sub = parser.add_subparsers(dest="command", required=True)
    shared = [common(True)]

    p = sub.add_parser("enhance", parents=shared, help="denoise, EQ, compress, normalise loudness")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="enhanced audio (format from its suffix)")
    p.add_argument("--eq", dest="eq_preset", choices=("balanced", "vocal", "bass_boost", "none"),
                   help="EQ preset (balanced); none: denoise only")
    p.add_argument("--no-denoise", dest="denoise", action="store_false", default=None)
    p.add_argument("--noise-reduction", type=float, help="0..1 (0.5)")
    p.add_argument("--compression", action="store_true", default=None)
    p.add_argument("--no-normalize", dest="normalize", action="store_false", default=None)
    p.add_argument("--target-lufs", type=float, help="-31..-5 (-16)")
    p.add_argument("--report", type=Path, help="also save report.json (loudness before/after) here")
    _audio_options(p)

    p = sub.add_parser("separate", parents=shared, help="split into stems")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for the stems and manifest.json")
    p.add_argument("--type", dest="separation_type",
                   choices=("dialogue-me", "dialogue-music-effect", "speech-nonlingual"))
    _audio_options(p)

    p = sub.add_parser("diarize", parents=shared, help="who spoke when, with a transcript")
    p.add_argument("input", type=Path)
    p.add_argument("--srt", type=Path, required=True, help="SRT with speaker labels")
    p.add_argument("--json-out", type=Path, help="also save diarization.json here")
    p.add_argument("--num-speakers", type=int)
    p.add_argument("--language", help="language code or auto")
    p.add_argument("--vad", dest="vad_type", choices=("ten-vad", "silero", "webrtc"))
    p.add_argument("--input-srt", type=Path, help="label these cues instead of transcribing")

    p = sub.add_parser("jobs", parents=shared, help="your recent jobs")
    p.add_argument("--limit", type=int, default=20)
    p = sub.add_parser("job", parents=shared, help="one job, with its results and viewer_url")
    p.add_argument("job_id")
    sub.add_parser("account", parents=shared, help="your balance in credits")
    return parser


def _audio_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", dest="output_format", choices=FORMATS)
    p.add_argument("--sample-rate", type=int)
    p.add_argument("--bit-depth", type=int, choices=(8, 16, 24, 32))


def _run_job(tb: Timbr, args: argparse.Namespace, job_type: str, params: dict[str, Any],
             fetch: Callable[[Job], list[Path]]) -> dict[str, Any]:
    with Bars(enabled=not args.json) as bars:
        create = getattr(tb, job_type)
        job = create(args.input, on_upload=bars.bytes(f"upload {args.input.name}"[:24]), **params)
        args.job_id = job.job_id        # for the message if Ctrl-C stops the wait
        job = tb.wait(job, on_progress=bars.job(job_type))
        files = fetch(job)
    return {"job": job.raw, "files": [str(p) for p in files]}


def _enhance(tb: Timbr, args: argparse.Namespace) -> dict[str, Any]:
    params = _params(args, "eq_preset", "denoise", "noise_reduction", "compression", "normalize", "target_lufs",
                     "output_format", "sample_rate", "bit_depth")
    suffix = args.output.suffix.lstrip(".").lower()
    if params.get("output_format") is None and suffix in FORMATS:
        params["output_format"] = suffix

    def fetch(job: Job) -> list[Path]:
        files = tb.download(job, args.output, name="enhanced")
        return files + (tb.download(job, args.report, name="report.json") if args.report else [])
    return _run_job(tb, args, "enhance", params, fetch)


def _separate(tb: Timbr, args: argparse.Namespace) -> dict[str, Any]:
    params = _params(args, "separation_type", "output_format", "sample_rate", "bit_depth")
    return _run_job(tb, args, "separate", params, lambda job: tb.download(job, args.output))


def _diarize(tb: Timbr, args: argparse.Namespace) -> dict[str, Any]:
    params = _params(args, "num_speakers", "language", "vad_type")
    if args.input_srt:
        params["input_srt_file_id"] = tb.upload(args.input_srt).file_id

    def fetch(job: Job) -> list[Path]:
        files = tb.download(job, args.srt, name="transcript.srt")
        return files + (tb.download(job, args.json_out, name="diarization.json") if args.json_out else [])
    return _run_job(tb, args, "diarize", params, fetch)


def _params(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _jobs(tb: Timbr, args: argparse.Namespace) -> dict[str, Any]:
    jobs = tb.jobs(limit=args.limit)
    if not args.json:
        table = Table("job_id", "type", "status", "progress", "credits", "created")
        for j in jobs:
            table.add_row(j.job_id, j.job_type, j.status, f"{j.progress:.0%}", str(j.credits_reserved),
                          str(j.raw.get("created_at") or "")[:19])
        Console().print(table)
    return {"jobs": [j.raw for j in jobs]}


def _job(tb: Timbr, args: argparse.Namespace) -> dict[str, Any]:
    job = tb.job(args.job_id)
    if not args.json:
        print(f"{job.job_id}  {job.job_type}  {job.status}  {job.progress:.0%}  {job.stage}")
        for r in job.results:
            print(f"  {r.name}  {r.size_bytes} B  {r.url}")
        if job.viewer_url:
            print(f"  view: {job.viewer_url}")
    return job.raw


def _account(tb: Timbr, args: argparse.Namespace) -> dict[str, Any]:
    acc = tb.account()
    if not args.json:
        print(f"{acc.account_id} ({acc.name}): {acc.available_credits} credits available, "
              f"{acc.reserved_credits} reserved, {acc.spent_credits} spent")
    return dict(vars(acc))


COMMANDS = {"enhance": _enhance, "separate": _separate, "diarize": _diarize, "jobs": _jobs, "job": _job,
            "account": _account}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("no token: set TIMBR_TOKEN or pass --token")
    try:
        with Timbr(token=args.token, base_url=args.base_url) as tb:
            out = COMMANDS[args.command](tb, args)
    except KeyboardInterrupt:
        job_id = getattr(args, "job_id", None)
        print("timbr: interrupted" + (f"; job {job_id} goes on (`timbr job {job_id}`)" if job_id else ""),
              file=sys.stderr)
        return 130
    except (TimbrError, OSError) as exc:
        body = {"code": getattr(exc, "code", type(exc).__name__), "message": getattr(exc, "message", str(exc))}
        if isinstance(exc, JobFailed):
            body["job"] = exc.job.raw
        if isinstance(exc, APIError):
            body["status"] = exc.status
        if args.json:
            print(json.dumps({"error": body}))
        print(f"timbr: error: {body['code']}: {body['message']}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out, default=str))
    elif args.command in ("enhance", "separate", "diarize"):
        job = out["job"]
        print(f"{job['job_id']} {job['status']}: {job.get('credits_reserved', 0)} credits")
        for path in out["files"]:
            print(f"  {path}")
        if job.get("viewer_url"):
            print(f"  view: {job['viewer_url']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
