"""``Timbr``: the synchronous client of the Timbr REST API.

    from timbr import Timbr

    with Timbr(token="TBR_...", base_url="http://127.0.0.1:8000") as tb:
        job = tb.enhance("speech.wav", eq_preset="vocal")     # uploads, then creates the job
        job = tb.wait(job)                                     # polls until it ends
        tb.download(job, "enhanced.wav", name="enhanced")      # the signed result, streamed to disk

Every call retries network errors, 429 and 5xx (``timbr.retry``); every job-creating call and
upload sends one ``Idempotency-Key`` that all its retries reuse, so a retried call never
creates or charges twice. Errors are the typed classes of ``timbr.errors``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Self

import httpx

from timbr import errors
from timbr.models import Account, File, Job, Result
from timbr.retry import RetryPolicy

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
ByteProgress = Callable[[int, int], None]     # (bytes done, bytes total)
JobProgress = Callable[[Job], None]


class _CountingReader:
    """A binary file that reports how far it has been read (httpx streams multipart by read())."""

    def __init__(self, raw: IO[bytes], total: int, on_progress: ByteProgress | None) -> None:
        self._raw, self._total, self._on_progress = raw, total, on_progress

    def read(self, n: int = -1) -> bytes:
        chunk = self._raw.read(n)
        if self._on_progress:
            self._on_progress(self._raw.tell(), self._total)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


class Timbr:
    """Client of one Timbr deployment for one account token (``TIMBR_TOKEN`` by default)."""

    def __init__(self, token: str | None = None, base_url: str | None = None, *, timeout: float = 60.0,
                 retry: RetryPolicy | None = None, transport: httpx.BaseTransport | None = None) -> None:
        token = token or os.environ.get("TIMBR_TOKEN")
        if not token:
            raise ValueError("no token: pass token= or set TIMBR_TOKEN")
        self.token = token
        self.base_url = (base_url or os.environ.get("TIMBR_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers={"User-Agent": "timbr-python/0.1"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport
    def _send(self, build: Callable[[], httpx.Request], stream: bool = False) -> httpx.Response:
        """Send the request ``build`` makes (anew for each try), retrying what is retryable."""
        attempt = 0
        while True:
            try:
                response = self._http.send(build(), stream=stream)
            except httpx.TransportError as exc:
                if attempt >= self.retry.max_retries:
                    raise errors.ConnectionFailed(f"{type(exc).__name__}: {exc} (after {attempt + 1} tries)") from exc
                time.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            if response.status_code < 400:
                return response
            if stream:
                response.read()
                response.close()
            error = errors.from_response(response)
            if self.retry.retryable(error.status, error.code) and attempt < self.retry.max_retries:
                time.sleep(self.retry.delay(attempt, errors.retry_after(response)))
                attempt += 1
                continue
            raise error

    def _api(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
             idempotency_key: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = self._send(lambda: self._http.build_request(method, path, json=json, params=params,
                                                               headers=headers))
        return response.json() if response.content else None

    # ------------------------------------------------------------------ files
    def upload(self, source: str | os.PathLike | IO[bytes], filename: str | None = None, *,
               on_progress: ByteProgress | None = None, idempotency_key: str | None = None) -> File:
        """Upload an audio (or .srt) file, streamed from disk; ``on_progress(sent, total)``."""
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            with path.open("rb") as fh:
                return self.upload(fh, filename or path.name, on_progress=on_progress,
                                   idempotency_key=idempotency_key)
        filename = filename or Path(getattr(source, "name", "upload")).name
        total = source.seek(0, os.SEEK_END)     # httpx sends the whole file, from offset 0
        key = idempotency_key or uuid.uuid4().hex
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": key}

        def build() -> httpx.Request:
            source.seek(0)
            body = _CountingReader(source, total, on_progress)
            return self._http.build_request("POST", "/v1/upload", headers=headers,
                                            files={"file": (filename, body, "application/octet-stream")})

        return File.from_json(self._send(build).json())

    def delete_file(self, file: File | str) -> None:
        """Remove an upload from storage (409 ``file_in_use`` while a running job reads it)."""
        self._api("DELETE", f"/v1/files/{file.file_id if isinstance(file, File) else file}")

    # ------------------------------------------------------------------ jobs
    def _file_id(self, file: File | str | os.PathLike, on_progress: ByteProgress | None) -> str:
        if isinstance(file, File):
            return file.file_id
        if isinstance(file, str) and file.startswith("file_") and not os.path.exists(file):
            return file
        return self.upload(file, on_progress=on_progress).file_id

    def _create(self, job_type: str, file: File | str | os.PathLike, params: dict[str, Any],
                idempotency_key: str | None, on_upload: ByteProgress | None) -> Job:
        body = {"file_id": self._file_id(file, on_upload), **{k: v for k, v in params.items() if v is not None}}
        created = self._api("POST", f"/v1/audio/{job_type}", json=body,
                            idempotency_key=idempotency_key or uuid.uuid4().hex)
        return Job.from_json(created)

    def enhance(self, file: File | str | os.PathLike, *, idempotency_key: str | None = None,
                on_upload: ByteProgress | None = None, **params: Any) -> Job:
        """Create an enhance job. ``file``: a File, a file_id or a local path (uploaded first).
        Params (server defaults when omitted): denoise, noise_reduction, eq_preset, compression,
        normalize, target_lufs, output_format, sample_rate, bit_depth, webhook_url."""
        return self._create("enhance", file, params, idempotency_key, on_upload)

    def separate(self, file: File | str | os.PathLike, *, idempotency_key: str | None = None,
                 on_upload: ByteProgress | None = None, **params: Any) -> Job:
        """Create a separate job. Params: separation_type, sample_rate, bit_depth, output_format, webhook_url."""
        return self._create("separate", file, params, idempotency_key, on_upload)

    def diarize(self, file: File | str | os.PathLike, *, idempotency_key: str | None = None,
                on_upload: ByteProgress | None = None, **params: Any) -> Job:
        """Create a diarize job. Params: num_speakers, language, vad_type, vad_threshold,
        vad_min_speech_duration, vad_min_silence_duration, detect_gender, input_srt_file_id, webhook_url."""
        return self._create("diarize", file, params, idempotency_key, on_upload)

    def job(self, job: Job | str) -> Job:
        return Job.from_json(self._api("GET", f"/v1/jobs/{_job_id(job)}"))

    def jobs(self, limit: int = 50) -> list[Job]:
        return [Job.from_json(j) for j in self._api("GET", "/v1/jobs", params={"limit": limit})["jobs"]]

    def cancel(self, job: Job | str) -> Job:
        return Job.from_json(self._api("POST", f"/v1/jobs/{_job_id(job)}/cancel"))

    def delete_job(self, job: Job | str) -> None:
        """Remove a finished job's results from storage; the job record stays (it was billed)."""
        self._api("DELETE", f"/v1/jobs/{_job_id(job)}")

    def account(self) -> Account:
        return Account.from_json(self._api("GET", "/v1/account"))

    # ------------------------------------------------------------------ webhooks
    def webhook(self) -> dict[str, Any]:
        """The account's default webhook: ``{"url", "secret"}`` (the secret signs every delivery)."""
        return self._api("GET", "/v1/account/webhook")

    def set_webhook(self, url: str | None, *, rotate_secret: bool = False) -> dict[str, Any]:
        """Set (``None``: remove) the default webhook URL; ``rotate_secret`` makes a new secret."""
        return self._api("PUT", "/v1/account/webhook", json={"url": url, "rotate_secret": rotate_secret})

    def webhook_deliveries(self, job: Job | str) -> list[dict[str, Any]]:
        """Every delivery of the job's webhook, with each attempt (status code, error, outcome)."""
        return self._api("GET", f"/v1/jobs/{_job_id(job)}/webhooks")["deliveries"]

    def wait(self, job: Job | str, *, timeout: float | None = 3600.0, poll_s: float = 1.0,
             on_progress: JobProgress | None = None, raise_on_failure: bool = True) -> Job:
        """Poll until the job ends. Raises JobFailed if it failed or was cancelled (unless
        ``raise_on_failure=False``) and WaitTimeout after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = min(0.25, poll_s)
        while True:
            current = self.job(job)
            if on_progress:
                on_progress(current)
            if current.done:
                if raise_on_failure and current.status != "completed":
                    raise errors.JobFailed(current)
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.WaitTimeout(current, timeout or 0)
            time.sleep(interval)
            interval = min(poll_s, interval * 1.5)

    # ------------------------------------------------------------------ results
    def download(self, job: Job | str, to: str | os.PathLike, *, name: str | None = None,
                 on_progress: ByteProgress | None = None) -> list[Path]:
        """Download results through their signed URLs (no token is sent with them).

        With ``name`` ("enhanced" or "enhanced.wav"), that one result goes to ``to`` (a file path,
        or a folder to put it in); without, every result goes into the folder ``to``.
        """
        signed = isinstance(job, Job) and job.results and all(r.url for r in job.results)
        current = job if signed else self.job(job)     # a listed job may hold null URLs: ask afresh
        if current.status != "completed":
            raise errors.JobFailed(current)
        removed = current.raw.get("results_removed")
        if removed:
            raise errors.Gone(410, removed, f"the results of job {current.job_id} were removed ({removed})")
        chosen = [current.result(name)] if name else list(current.results)
        dest = Path(to)
        if name is None or dest.is_dir() or str(to).endswith(os.sep):
            dest.mkdir(parents=True, exist_ok=True)
            targets = [dest / r.name for r in chosen]
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            targets = [dest]
        for result, target in zip(chosen, targets, strict=True):
            try:
                self._fetch(result, target, on_progress)
            except errors.PermissionDenied:      # the signed URL timed out: ask for fresh ones
                fresh = self.job(current.job_id).result(result.name)
                self._fetch(fresh, target, on_progress)
        return targets

    def _fetch(self, result: Result, target: Path, on_progress: ByteProgress | None) -> None:
        part = target.with_name(target.name + ".part")
        with self._stream_get(result.url) as response, part.open("wb") as out:
            total = int(response.headers.get("content-length") or result.size_bytes or 0)
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)
                if on_progress:
                    on_progress(out.tell(), total)
        part.replace(target)

    @contextmanager
    def _stream_get(self, url: str) -> Iterator[httpx.Response]:
        response = self._send(lambda: self._http.build_request("GET", url), stream=True)
        try:
            yield response
        finally:
            response.close()


def _job_id(job: Job | str) -> str:
    return job.job_id if isinstance(job, Job) else job
