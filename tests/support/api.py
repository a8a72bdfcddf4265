"""Small helpers for driving the REST API in tests."""

from __future__ import annotations

import time

import httpx

TERMINAL = {"completed", "failed", "cancelled"}


def upload(api: httpx.Client, headers: dict, data: bytes, filename: str = "audio.wav") -> httpx.Response:
    return api.post("/v1/upload", headers=headers, files={"file": (filename, data, "application/octet-stream")})


def upload_ok(api: httpx.Client, headers: dict, data: bytes, filename: str = "audio.wav") -> dict:
    r = upload(api, headers, data, filename)
    assert r.status_code == 200, r.text
    return r.json()


def wait_job(api: httpx.Client, headers: dict, job_id: str, timeout_s: float = 90.0,
             until=TERMINAL) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        r = api.get(f"/v1/jobs/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        job = r.json()
        if job["status"] in until:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s} s: {job}")
        time.sleep(0.2)
