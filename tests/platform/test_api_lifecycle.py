"""The whole lifecycle through the REST API against the real services, broker and PostgreSQL."""

from __future__ import annotations

import io
import json
import time
import uuid

import numpy as np
import soundfile as sf

from services.common.pb.timbr.v1 import events_pb2
from tests.support.api import upload, upload_ok, wait_job
from tests.support.audio import tone_wav


def test_upload_job_poll_download_and_credits(api, make_account):
    acc = make_account(100)
    info = upload_ok(api, acc.headers, tone_wav(2.5, rate=22050, channels=2), "two tones.wav")
    assert info["kind"] == "audio" and info["format"] == "wav" and info["codec"] == "pcm_s16le"
    assert abs(info["duration"] - 2.5) < 1e-3 and info["sample_rate"] == 22050 and info["channels"] == 2
    assert info["filename"] == "two_tones.wav"

    r = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": info["file_id"]})
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["status"] == "queued" and created["credits_reserved"] == 3  # 2.5 s rounds up
    assert acc.balance().available == 97 and acc.balance().reserved == 3

    job = wait_job(api, acc.headers, created["job_id"])
    assert job["status"] == "completed", job
    assert job["progress"] == 1.0 and job["error"] is None and job["credits_charged"] == 3
    assert job["params"]["noise_reduction"] == 0.5 and job["params"]["eq_preset"] == "balanced"  # defaults
    assert job["started_at"] and job["finished_at"] >= job["started_at"]
    names = {r["name"]: r for r in job["results"]}
    assert set(names) == {"enhanced.wav", "report.json"}

    audio = api.get(names["enhanced.wav"]["url"])  # no token: the signature is the credential
    assert audio.status_code == 200
    out, rate = sf.read(io.BytesIO(audio.content), always_2d=True)
    assert rate == 22050 and out.shape == (int(2.5 * 22050), 2)
    assert abs(np.abs(out).max() - 0.25) < 1e-3  # the test pipeline halves the gain
    report = api.get(names["report.json"]["url"]).json()
    assert abs(report["peak_out"] - report["peak_in"] / 2) < 1e-6

    b = acc.settled_balance()
    assert (b.available, b.reserved, b.spent) == (97, 0, 3)
    kinds = [(e.kind, e.credits, e.job_id) for e in acc.ledger()]
    assert sorted(kinds) == sorted([("grant", 100, ""), ("reserve", 3, job["job_id"]),
                                    ("confirm", 3, job["job_id"])])


def test_bearer_prefix_is_accepted(api, make_account):
    acc = make_account(10)
    r = api.get("/v1/account", headers={"Authorization": f"Bearer {acc.token}"})
    assert r.status_code == 200 and r.json()["available_credits"] == 10


def test_permanent_failure_releases_credits(api, make_account):
    acc = make_account(50)
    f = upload_ok(api, acc.headers, tone_wav(1.2))
    job_id = api.post("/v1/audio/enhance", headers=acc.headers,
                      json={"file_id": f["file_id"], "eq_preset": "vocal"}).json()["job_id"]
    job = wait_job(api, acc.headers, job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_audio" and job["results"] == []
    b = acc.settled_balance()
    assert (b.available, b.reserved, b.spent) == (50, 0, 0)
    assert sorted(e.kind for e in acc.ledger()) == ["grant", "release", "reserve"]


def test_transient_failure_is_retried_then_dead_lettered(api, make_account, stack):
    from kafka import KafkaConsumer

    acc = make_account(50)
    f = upload_ok(api, acc.headers, tone_wav(1.0))
    job_id = api.post("/v1/audio/enhance", headers=acc.headers,
                      json={"file_id": f["file_id"], "eq_preset": "bass_boost"}).json()["job_id"]
    job = wait_job(api, acc.headers, job_id, timeout_s=60)
    assert job["status"] == "failed" and job["error"]["code"] == "processing_failed"
    assert "after 3 attempts" in job["error"]["message"]
    b = acc.settled_balance()
    assert b.available == 50 and b.reserved == 0

    dlq = KafkaConsumer("audio.jobs.requested.dlq", bootstrap_servers=f"127.0.0.1:{stack.kafka_port}",
                        auto_offset_reset="earliest", consumer_timeout_ms=5000, group_id=None)
    ids = {events_pb2.JobRequested.FromString(m.value).job_id for m in dlq}
    dlq.close()
    assert job_id in ids


def test_duplicate_completed_event_charges_once(api, make_account, stack):
    from kafka import KafkaProducer

    from services.common.kafka import headers, job_event_type

    acc = make_account(20)
    f = upload_ok(api, acc.headers, tone_wav(1.0))
    job_id = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    job = wait_job(api, acc.headers, job_id)
    assert job["status"] == "completed"

    producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{stack.kafka_port}")
    for event_type in (events_pb2.EVENT_TYPE_COMPLETED, events_pb2.EVENT_TYPE_FAILED,
                       events_pb2.EVENT_TYPE_PROGRESS):
        event = events_pb2.JobEvent(event_id=uuid.uuid4().hex, job_id=job_id, account_id=acc.account_id,
                                    job_type="enhance", type=event_type, error_code="processing_failed")
        producer.send("audio.jobs.reports", key=job_id.encode(), value=event.SerializeToString(),
                      headers=headers(job_event_type(event_type))).get(timeout=10)
    producer.close()
    time.sleep(2.0)  # let the jobs service consume them

    again = api.get(f"/v1/jobs/{job_id}", headers=acc.headers).json()
    assert again["status"] == "completed" and again["error"] is None
    assert sorted(e.kind for e in acc.ledger()) == ["confirm", "grant", "reserve"]
    assert acc.balance().spent == 1 and acc.balance().available == 19


def test_insufficient_credits_is_402_with_balance_and_nothing_reserved(api, make_account):
    acc = make_account(2)
    f = upload_ok(api, acc.headers, tone_wav(3.2))
    r = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]})
    assert r.status_code == 402
    err = r.json()["error"]
    assert err["code"] == "insufficient_credits" and err["required"] == 4 and err["available"] == 2
    assert acc.balance().available == 2 and acc.balance().reserved == 0
    assert [e.kind for e in acc.ledger()] == ["grant"]
    assert api.get("/v1/jobs", headers=acc.headers).json()["jobs"] == []


def test_cancel_releases_credits_and_stops_the_job(api, make_account, stack):
    acc = make_account(30)
    f = upload_ok(api, acc.headers, tone_wav(1.0))
    # A second, slow worker in its own group would see other tests' jobs too; instead cancel
    # while queued or running and check the end state and the ledger either way.
    job_id = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    r = api.post(f"/v1/jobs/{job_id}/cancel", headers=acc.headers)
    if r.status_code == 409:  # the fast test pipeline already finished it
        assert r.json()["error"]["code"] == "invalid_state"
        assert wait_job(api, acc.headers, job_id)["status"] == "completed"
        assert acc.settled_balance().spent == 1
        return
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    time.sleep(1.0)
    job = api.get(f"/v1/jobs/{job_id}", headers=acc.headers).json()
    assert job["status"] == "cancelled" and job["results"] == []
    b = acc.settled_balance()
    assert b.available == 30 and b.reserved == 0
    assert api.post(f"/v1/jobs/{job_id}/cancel", headers=acc.headers).status_code == 409


def test_results_of_a_listed_job_and_account_view(api, make_account):
    acc = make_account(10)
    f = upload_ok(api, acc.headers, tone_wav(1.0))
    job_id = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    wait_job(api, acc.headers, job_id)
    jobs = api.get("/v1/jobs", headers=acc.headers).json()["jobs"]
    assert [j["job_id"] for j in jobs] == [job_id]
    account = api.get("/v1/account", headers=acc.headers).json()
    assert account == {"account_id": acc.account_id, "name": account["name"], "available_credits": 9,
                       "reserved_credits": 0, "spent_credits": 1}


def test_upload_alias_and_formats(api, make_account):
    acc = make_account(0)
    for fmt, name in (("FLAC", "a.flac"), ("OGG", "a.ogg"), ("WAV", "a.wav")):
        r = api.post("/v1/audio/upload", headers=acc.headers,
                     files={"file": (name, tone_wav(1.0, 44100, 2, fmt=fmt), "audio/x")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["sample_rate"] == 44100 and body["channels"] == 2 and abs(body["duration"] - 1.0) < 0.01


def test_srt_upload_is_validated(api, make_account):
    acc = make_account(0)
    good = "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:00:02,000 --> 00:00:03,000\nHi.\n"
    r = upload(api, acc.headers, good.encode(), "subs.srt")
    assert r.status_code == 200 and r.json()["kind"] == "subtitle"
    for bad in (b"not a subtitle at all", b"", b"1\n00:00:02,000 --> 00:00:01,000\nBackwards\n",
                b"\xff\xfe\x00garbage"):
        r = upload(api, acc.headers, bad, "bad.srt")
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["code"] in ("invalid_srt", "invalid_audio")


def test_diarize_input_srt_must_be_a_subtitle(api, make_account):
    acc = make_account(100)
    audio = upload_ok(api, acc.headers, tone_wav(1.0))
    r = api.post("/v1/audio/diarize", headers=acc.headers,
                 json={"file_id": audio["file_id"], "input_srt_file_id": audio["file_id"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    assert "input_srt_file_id" in r.json()["error"]["message"]
    assert acc.balance().reserved == 0


def test_invalid_audio_is_refused_and_nothing_stored(api, make_account, stack):
    acc = make_account(0)
    for data, name in ((b"", "empty.wav"), (b"RIFF" + b"\x00" * 40, "broken.wav"),
                       (json.dumps({"a": 1}).encode() * 50, "x.mp3"), (b"\x00" * 10000, "zeros.raw")):
        r = upload(api, acc.headers, data, name)
        assert r.status_code == 422, (name, r.text)
        assert r.json()["error"]["code"] == "invalid_audio"
    stored = list((stack.root / "storage").glob(f"bronze/{acc.account_id}/**/*"))
    assert [p for p in stored if p.is_file()] == []


def test_health_docs_metrics(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
    assert "swagger-ui" in api.get("/docs").text
    spec = api.get("/openapi.json").json()
    for path in ("/v1/upload", "/v1/audio/separate", "/v1/audio/enhance", "/v1/audio/diarize", "/v1/jobs/{job_id}"):
        assert path in spec["paths"]
    assert "TimbrToken" in spec["components"]["securitySchemes"]
    metrics = api.get("/metrics").text
    assert "timbr_http_request_duration_seconds_bucket" in metrics


def test_every_service_exposes_prometheus_metrics(api, make_account, stack):
    import httpx

    acc = make_account(5)
    f = upload_ok(api, acc.headers, tone_wav(1.0))
    wait_job(api, acc.headers, api.post("/v1/audio/enhance", headers=acc.headers,
                                        json={"file_id": f["file_id"]}).json()["job_id"])
    billing_port, jobs_port, worker_port = stack.metrics_ports
    expected = {billing_port: ['timbr_credits_total{kind="confirm"}', "timbr_grpc_request_duration_seconds"],
                jobs_port: ['timbr_jobs_total{job_type="enhance",status="completed"}', "timbr_outbox_pending",
                            "timbr_kafka_consumer_lag"],
                worker_port: ['timbr_worker_jobs_total{job_type="enhance",outcome="completed"}',
                              'timbr_pipeline_realtime_factor_bucket{job_type="enhance"',
                              'timbr_pipeline_stage_seconds_count{job_type="enhance",stage="process"}']}
    for port, names in expected.items():
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        for name in names:
            assert name in text, (port, name)
    # The worker only calls gRPC: it lists no server latency (an empty family before).
    assert "timbr_grpc_request_duration_seconds" not in httpx.get(f"http://127.0.0.1:{worker_port}/metrics",
                                                                  timeout=10).text
