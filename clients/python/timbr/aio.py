"""``AsyncTimbr``: the asyncio twin of ``Timbr`` (httpx.AsyncClient), same calls, errors and retries.

    async with AsyncTimbr(token="TBR_...") as tb:
        job = await tb.wait(await tb.enhance("speech.wav", eq_preset="vocal"))
        await tb.download(job, "enhanced.wav", name="enhanced")

It shares the retry policy, the typed errors and the models with the sync client; only the
transport differs. Uploads stream from the file in 64 KiB reads (local disk reads, done on the
event loop).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import IO, Any, Self

import httpx

from timbr import errors
from timbr.client import DEFAULT_BASE_URL, ByteProgress, JobProgress, _CountingReader, _job_id
from timbr.models import Account, File, Job, Result
from timbr.retry import RetryPolicy


class AsyncTimbr:
    def __init__(self, token: str | None = None, base_url: str | None = None, *, timeout: float = 60.0,
                 retry: RetryPolicy | None = None) -> None:
        token = token or os.environ.get("TIMBR_TOKEN")
        if not token:
            raise ValueError("no token: pass token= or set TIMBR_TOKEN")
        self.token = token
        self.base_url = (base_url or os.environ.get("TIMBR_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                       headers={"User-Agent": "timbr-python/0.1 (async)"})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _send(self, build, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.send(build(), stream=stream)
            except httpx.TransportError as exc:
                if attempt >= self.retry.max_retries:
                    raise errors.ConnectionFailed(f"{type(exc).__name__}: {exc} (after {attempt + 1} tries)") from exc
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            if response.status_code < 400:
                return response
            await response.aread()
            await response.aclose()
            error = errors.from_response(response)
            if self.retry.retryable(error.status, error.code) and attempt < self.retry.max_retries:
                await asyncio.sleep(self.retry.delay(attempt, errors.retry_after(response)))
                attempt += 1
                continue
            raise error

    async def _api(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                   idempotency_key: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = await self._send(lambda: self._http.build_request(method, path, json=json, params=params,
                                                                     headers=headers))
        return response.json() if response.content else None

    async def upload(self, source: str | os.PathLike | IO[bytes], filename: str | None = None, *,
                     on_progress: ByteProgress | None = None, idempotency_key: str | None = None) -> File:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            with path.open("rb") as fh:  # noqa: ASYNC230 - a local file, opened once
                return await self.upload(fh, filename or path.name, on_progress=on_progress,
                                         idempotency_key=idempotency_key)
        filename = filename or Path(getattr(source, "name", "upload")).name
        total = source.seek(0, os.SEEK_END)
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": idempotency_key or uuid.uuid4().hex}

        def build() -> httpx.Request:
            source.seek(0)
            body = _CountingReader(source, total, on_progress)   # httpx streams it in 64 KiB reads
            return self._http.build_request("POST", "/v1/upload", headers=headers,
                                            files={"file": (filename, body, "application/octet-stream")})

        response = await self._send(build)
        return File.from_json(response.json())

    async def _file_id(self, file: File | str | os.PathLike, on_progress: ByteProgress | None) -> str:
        if isinstance(file, File):
            return file.file_id
        if isinstance(file, str) and file.startswith("file_") and not os.path.exists(file):
            return file
        return (await self.upload(file, on_progress=on_progress)).file_id

    async def _create(self, job_type: str, file, params: dict[str, Any], idempotency_key: str | None,
                      on_upload: ByteProgress | None) -> Job:
        body = {"file_id": await self._file_id(file, on_upload), **{k: v for k, v in params.items() if v is not None}}
        return Job.from_json(await self._api("POST", f"/v1/audio/{job_type}", json=body,
                                             idempotency_key=idempotency_key or uuid.uuid4().hex))

    async def enhance(self, file, *, idempotency_key: str | None = None, on_upload: ByteProgress | None = None,
                      **params: Any) -> Job:
        return await self._create("enhance", file, params, idempotency_key, on_upload)

    async def separate(self, file, *, idempotency_key: str | None = None, on_upload: ByteProgress | None = None,
                       **params: Any) -> Job:
        return await self._create("separate", file, params, idempotency_key, on_upload)

    async def diarize(self, file, *, idempotency_key: str | None = None, on_upload: ByteProgress | None = None,
                      **params: Any) -> Job:
        return await self._create("diarize", file, params, idempotency_key, on_upload)

    async def job(self, job: Job | str) -> Job:
        return Job.from_json(await self._api("GET", f"/v1/jobs/{_job_id(job)}"))

    async def jobs(self, limit: int = 50) -> list[Job]:
        return [Job.from_json(j) for j in (await self._api("GET", "/v1/jobs", params={"limit": limit}))["jobs"]]

    async def cancel(self, job: Job | str) -> Job:
        return Job.from_json(await self._api("POST", f"/v1/jobs/{_job_id(job)}/cancel"))

    async def account(self) -> Account:
        return Account.from_json(await self._api("GET", "/v1/account"))

    async def wait(self, job: Job | str, *, timeout: float | None = 3600.0, poll_s: float = 1.0,
                   on_progress: JobProgress | None = None, raise_on_failure: bool = True) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = min(0.25, poll_s)
        while True:
            current = await self.job(job)
            if on_progress:
                on_progress(current)
            if current.done:
                if raise_on_failure and current.status != "completed":
                    raise errors.JobFailed(current)
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.WaitTimeout(current, timeout or 0)
            await asyncio.sleep(interval)
            interval = min(poll_s, interval * 1.5)

    async def download(self, job: Job | str, to: str | os.PathLike, *, name: str | None = None) -> list[Path]:
        """As ``Timbr.download``: one result (``name``) to a path, or all into the folder ``to``."""
        signed = isinstance(job, Job) and job.results and all(r.url for r in job.results)
        current = job if signed else await self.job(job)
        if current.status != "completed":
            raise errors.JobFailed(current)
        chosen = [current.result(name)] if name else list(current.results)
        dest = Path(to)
        if name is None or dest.is_dir() or str(to).endswith(os.sep):
            dest.mkdir(parents=True, exist_ok=True)
            targets = [dest / r.name for r in chosen]
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            targets = [dest]
        for result, target in zip(chosen, targets, strict=True):
            await self._fetch(result, target)
        return targets

    async def _fetch(self, result: Result, target: Path) -> None:
        part = target.with_name(target.name + ".part")
        response = await self._send(lambda: self._http.build_request("GET", result.url), stream=True)
        try:
            with part.open("wb") as out:
                async for chunk in response.aiter_bytes(1 << 20):
                    out.write(chunk)
        finally:
            await response.aclose()
        part.replace(target)
