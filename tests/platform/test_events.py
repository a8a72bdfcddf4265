"""Kafka contract (docs/events.md) read from outside by the example consumer (examples/), against
the running stack: every topic keyed as documented, the three headers on every record, credit
events from billing's outbox, JobRequested carrying the credits reserved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.api import upload_ok, wait_job
from tests.support.audio import tone_wav

ROOT = Path(__file__).resolve().parents[2]


def _consume(stack, group: str, idle_s: float = 6.0) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "consume_events.py"), "--bootstrap",
                          f"127.0.0.1:{stack.kafka_port}", "--group", group, "--idle-exit-s", str(idle_s)],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def test_example_consumer_follows_a_job_and_its_credits(stack, api, make_account):
    acc = make_account(100)
    info = upload_ok(api, acc.headers, tone_wav(2.5, rate=16000), "e.wav")
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    r = api.post("/v1/audio/enhance", headers={**acc.headers, "x-request-id": request_id},
                 json={"file_id": info["file_id"]})
    assert r.status_code == 200, r.text
    job = wait_job(api, acc.headers, r.json()["job_id"])
    assert job["status"] == "completed"

    group = f"analytics-{uuid.uuid4().hex[:8]}"
    records = _consume(stack, group)
    for rec in records:  # every record of every topic carries the three headers
        assert {"x-request-id", "event-type", "schema-version"} <= set(rec["headers"]), rec
        assert rec["headers"]["schema-version"] == "timbr.v1"

    mine = [r for r in records if r["message"].get("job_id") == job["job_id"]
            or r["message"].get("account_id") == acc.account_id]
    requested = [r for r in mine if r["topic"] == "audio.jobs.requested"]
    assert len(requested) == 1
    (req,) = requested
    assert req["key"] == job["job_id"] and req["headers"]["event-type"] == "job.requested"
    assert req["headers"]["x-request-id"] == request_id == req["message"]["request_id"]
    assert int(req["message"]["credits_reserved"]) == 3

    events = [r for r in mine if r["topic"] == "audio.jobs.events"]
    assert {r["key"] for r in events} == {job["job_id"]}
    types = [r["headers"]["event-type"] for r in events]
    assert types[0] == "job.running" and types[-1] == "job.completed" and types.count("job.completed") == 1
    assert all(r["headers"]["event-type"] == "job." + r["message"]["type"].removeprefix("EVENT_TYPE_").lower()
               for r in events)
    assert {r["headers"]["x-request-id"] for r in events} == {request_id}

    credits = [r for r in mine if r["topic"] == "billing.credits.events"]
    assert {r["key"] for r in credits} == {acc.account_id}
    assert len({r["partition"] for r in credits}) == 1  # keyed by account: one partition, in order
    got = [(r["headers"]["event-type"], int(r["message"]["credits"]), r["message"].get("job_id", ""),
            int(r["message"].get("available", 0)), int(r["message"].get("spent", 0))) for r in credits]
    assert got == [("credit.granted", 100, "", 100, 0), ("credit.reserved", 3, job["job_id"], 97, 0),
                   ("credit.confirmed", 3, job["job_id"], 97, 3)]
    assert credits[1]["headers"]["x-request-id"] == request_id

    # The group committed what it read: run again and nothing of this job comes back.
    again = _consume(stack, group, idle_s=3.0)
    assert not [r for r in again if r["message"].get("job_id") == job["job_id"]]
