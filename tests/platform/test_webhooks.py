"""Webhooks against the running stack with a real receiver on loopback: signed job documents,
retries with backoff on 5xx/429/timeouts, none on other 4xx, every attempt readable through
the API; the target guard and the give-up rule on the dispatcher itself (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import time

import httpx
import pytest

from services.common.netguard import TargetRefused, resolve
from services.common.pb.timbr.v1 import events_pb2
from services.common.storage import LocalStorage
from services.jobs.models import JobRecord, WebhookDelivery
from services.webhooks import signing
from services.webhooks.config import WebhookSettings
from services.webhooks.dispatcher import Sender, backoff_s, classify, enqueue
from tests.platform.test_jobs_service import env, event  # noqa: F401 - the fixture
from tests.support.api import upload_ok, wait_job
from tests.support.audio import tone_wav
from tests.support.receiver import Receiver


@pytest.fixture
def receiver():
    r = Receiver(slow_s=3.0)
    yield r
    r.close()


def _deliveries(api, acc, job_id, until_status: str, timeout_s: float = 30.0) -> list[dict]:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        r = api.get(f"/v1/jobs/{job_id}/webhooks", headers=acc.headers)
        assert r.status_code == 200, r.text
        found = r.json()["deliveries"]
        if found and found[0]["status"] == until_status:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.2)


def _stable(doc: dict) -> dict:
    """The job document without what is signed afresh at each rendering."""
    doc = json.loads(json.dumps(doc))
    doc.pop("viewer_url", None)
    for r in doc.get("results", []):
        r.pop("url"), r.pop("expires_at")
    return doc


def test_completed_job_is_delivered_signed_with_the_account_default(api, make_account, stack, receiver):
    acc = make_account(20)
    config = api.put("/v1/account/webhook", headers=acc.headers, json={"url": receiver.url("/hook")})
    assert config.status_code == 200
    secret = config.json()["secret"]
    assert secret.startswith("whsec_") and api.get("/v1/account/webhook", headers=acc.headers).json() == config.json()

    f = upload_ok(api, acc.headers, tone_wav(1.0))
    job_id = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    job = wait_job(api, acc.headers, job_id)
    [got] = receiver.wait("/hook", 1)
    assert signing.verify(secret, got.headers["timbr-signature"], got.body)
    assert not signing.verify(secret, got.headers["timbr-signature"], got.body + b" ")
    assert not signing.verify("whsec_other", got.headers["timbr-signature"], got.body)
    body = json.loads(got.body)
    assert _stable(body) == _stable(job) and body["status"] == "completed"
    assert got.headers["timbr-event"] == "job.completed" and got.headers["content-type"] == "application/json"
    assert httpx.get(body["results"][0]["url"]).status_code == 200  # its signed URLs work

    [delivery] = _deliveries(api, acc, job_id, "delivered")
    assert delivery["delivery_id"] == got.headers["timbr-delivery-id"] and delivery["event"] == "job.completed"
    assert delivery["url"] == receiver.url("/hook")
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in delivery["attempts"]] == [(1, 200, "delivered")]

    rotated = api.put("/v1/account/webhook", headers=acc.headers, json={"url": None, "rotate_secret": True}).json()
    assert rotated["url"] is None and rotated["secret"] != secret


def test_retries_on_5xx_429_and_timeouts_with_one_delivery_id(api, make_account, stack, receiver):
    acc = make_account(20)
    receiver.script["/flaky"] = [503, 429, "slow", 500, 200]
    f = upload_ok(api, acc.headers, tone_wav(1.0))
    job_id = api.post("/v1/audio/enhance", headers=acc.headers,
                      json={"file_id": f["file_id"], "webhook_url": receiver.url("/flaky")}).json()["job_id"]
    assert wait_job(api, acc.headers, job_id)["webhook_url"] == receiver.url("/flaky")
    got = receiver.wait("/flaky", 5, timeout_s=60)
    assert len({r.headers["timbr-delivery-id"] for r in got}) == 1
    assert [r.headers["timbr-attempt"] for r in got] == ["1", "2", "3", "4", "5"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    # base 0.4 s: waits of 0.2-0.4, 0.4-0.8, (1.5 s timeout +) 0.8-1.6, 1.6-3.2 s
    assert gaps[0] >= 0.15 and gaps[3] >= 1.5 and gaps[3] > gaps[0], gaps

    [delivery] = _deliveries(api, acc, job_id, "delivered")
    attempts = [(a["status_code"], a["outcome"]) for a in delivery["attempts"]]
    assert attempts == [(503, "retry"), (429, "retry"), (None, "retry"), (500, "retry"), (200, "delivered")]
    assert "timeout" in delivery["attempts"][2]["error"]


def test_other_4xx_is_not_retried_and_a_cancel_is_delivered(api, make_account, stack, receiver):
    acc = make_account(20)
    receiver.script["/gone"] = [410]
    f = upload_ok(api, acc.headers, tone_wav(1.0))
    # No worker runs separate in the test stack: the job waits until it is cancelled.
    job_id = api.post("/v1/audio/separate", headers=acc.headers,
                      json={"file_id": f["file_id"], "webhook_url": receiver.url("/gone")}).json()["job_id"]
    assert api.post(f"/v1/jobs/{job_id}/cancel", headers=acc.headers).status_code == 200
    [delivery] = _deliveries(api, acc, job_id, "failed")
    assert delivery["event"] == "job.cancelled"
    assert [(a["status_code"], a["outcome"]) for a in delivery["attempts"]] == [(410, "failed")]
    [got] = receiver.at("/gone")
    assert json.loads(got.body)["status"] == "cancelled" and got.headers["timbr-event"] == "job.cancelled"

    # A job with no webhook (and no account default) makes no delivery.
    quiet = api.post("/v1/audio/separate", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
    api.post(f"/v1/jobs/{quiet}/cancel", headers=acc.headers)
    assert api.get(f"/v1/jobs/{quiet}/webhooks", headers=acc.headers).json() == {"deliveries": []}
    other = make_account(1)
    assert api.get(f"/v1/jobs/{job_id}/webhooks", headers=other.headers).status_code == 404


def test_webhook_urls_are_checked_at_the_api(api, make_account, stack):
    """The stack allows private targets (as make run does); a gateway with the production
    setting refuses them, with the same billing and jobs behind it."""
    from fastapi.testclient import TestClient

    from services.gateway.app import create_app
    from services.gateway.config import GatewaySettings

    acc = make_account(5)
    for bad in ("ftp://example.com/x", "http://user:pw@example.com/", "not a url", "http://no-such-host.invalid/"):
        r = api.put("/v1/account/webhook", headers=acc.headers, json={"url": bad})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_webhook_url", bad
    r = api.put("/v1/account/webhook", headers=acc.headers, json={"url": "http://" + "a" * 2000})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    settings = GatewaySettings(billing_addr=f"127.0.0.1:{stack.billing_port}",
                               jobs_addr=f"127.0.0.1:{stack.jobs_port}", storage_root=stack.root / "storage",
                               webhook_allow_private=False)
    with TestClient(create_app(settings)) as strict:
        f = upload_ok(strict, acc.headers, tone_wav(1.0))
        for private in ("http://127.0.0.1:9/", "http://localhost/", "http://10.1.2.3/", "http://[::1]/",
                        "http://169.254.169.254/latest/meta-data/", "http://192.168.0.10/"):
            r = strict.put("/v1/account/webhook", headers=acc.headers, json={"url": private})
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_webhook_url", private
            r = strict.post("/v1/audio/separate", headers=acc.headers,
                            json={"file_id": f["file_id"], "webhook_url": private})
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_webhook_url", private
    assert acc.balance().reserved == 0


def test_the_dispatcher_exports_its_own_metrics(stack):
    """The dispatcher imports services.jobs (job documents, its Loop) but is not the jobs service:
    its /metrics has the webhook metrics and the process's own, none of the jobs service's."""
    text = httpx.get(f"http://127.0.0.1:{stack.webhooks_metrics_port}/metrics", timeout=10).text
    families = set(re.findall(r"^# TYPE (timbr_\S+) ", text, re.MULTILINE))
    assert {"timbr_webhook_attempts_total", "timbr_webhook_attempt_seconds", "timbr_webhook_deliveries_total",
            "timbr_webhook_pending", "timbr_webhook_consumer_lag"} <= families, sorted(families)
    assert not {f for f in families if not f.startswith("timbr_webhook_")}, sorted(families)
    assert "\nprocess_cpu_seconds_total " in text


# The dispatcher's rules, without the stack -----------------------------------------------------------


def test_target_guard():
    for refused in ("http://127.0.0.1/", "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/",
                    "http://169.254.169.254/", "http://100.64.0.1/", "http://[::1]/", "http://[fe80::1]/",
                    "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://224.0.0.1/", "https://localhost/"):
        with pytest.raises(TargetRefused):
            resolve(refused, allow_private=False)
    assert resolve("http://127.0.0.1:8080/x", allow_private=True) == ["127.0.0.1"]
    assert resolve("https://93.184.216.34/hook", allow_private=False) == ["93.184.216.34"]


def test_the_readme_receiver_code_verifies_deliveries():
    """The standard-library verifier the README gives receivers accepts what the dispatcher signs."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [code] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "def verify(raw_body" in b]
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the README's own code, run as a receiver would
    body = json.dumps({"job_id": "job_1", "status": "completed"}).encode()
    header = signing.sign("whsec_abc", body)
    assert namespace["verify"](body, header, "whsec_abc") == {"job_id": "job_1", "status": "completed"}
    for raw, secret, sig in ((body + b" ", "whsec_abc", header), (body, "whsec_other", header),
                             (body, "whsec_abc", signing.sign("whsec_abc", body, t=1_000_000_000))):
        with pytest.raises(ValueError):
            namespace["verify"](raw, sig, secret)
    now = int(time.time())
    for odd in (f"t={now},v1=\u2603", f"t={now},v1=" + "é" * 64, "v1=00", "t=x,v1=00", "garbage"):
        with pytest.raises(ValueError):            # what the README promises, whatever arrives
            namespace["verify"](body, odd, "whsec_abc")


def test_backoff_and_classification():
    for attempt in range(1, 12):
        delay = min(3600, 5 * 2 ** (attempt - 1))
        waits = [backoff_s(attempt, 5, 3600) for _ in range(50)]
        assert all(delay / 2 <= w <= delay for w in waits) and len(set(waits)) > 1  # jittered
    assert [classify(s) for s in (200, 204, 301, 400, 404, 410, 429, 500, 503)] == [
        "delivered", "delivered", "failed", "failed", "failed", "failed", "retry", "retry", "retry"]


def _sender(sessions, tmp_path, **kw) -> Sender:
    settings = WebhookSettings(webhook_backoff_base_s=0.01, storage_root=tmp_path / "s", **kw)
    return Sender(sessions, LocalStorage(tmp_path / "s", "x", "http://t"), settings)


def test_refused_targets_and_24_hours_of_failures_are_given_up(env, tmp_path):  # noqa: F811
    jobs, _, acc, sessions = env
    sender = _sender(sessions, tmp_path, webhook_allow_private=False, webhook_timeout_s=1.0)
    try:
        job = jobs.create_job(acc, "enhance", {}, {"file": "f1"}, webhook_url="http://127.0.0.1:9/hook")
        jobs.apply_event(event(job, events_pb2.EVENT_TYPE_FAILED, error_code="invalid_audio"))
        done = event(job, events_pb2.EVENT_TYPE_FAILED)
        assert enqueue(sessions, done) == "queued" and enqueue(sessions, done) == "duplicate"
        assert sender.step() and sender.step() is False
        [(delivery, attempts)] = jobs.webhook_deliveries(job.job_id, acc)
        assert delivery.status == "failed" and [a.outcome for a in attempts] == ["failed"]
        assert "refused target" in attempts[0].error

        # Port 9 on loopback refuses connections: retried, until the job ended 24 h ago.
        allowed = _sender(sessions, tmp_path, webhook_allow_private=True, webhook_timeout_s=1.0)
        old = jobs.create_job(acc, "enhance", {}, {"file": "f1"}, webhook_url="http://127.0.0.1:9/hook")
        jobs.cancel_job(old.job_id, acc)
        assert enqueue(sessions, event(old, events_pb2.EVENT_TYPE_CANCELLED)) == "queued"
        allowed.step()
        [(d, attempts)] = jobs.webhook_deliveries(old.job_id, acc)
        assert d.status == "pending" and attempts[0].outcome == "retry" and "connection" in attempts[0].error
        with sessions.begin() as s:
            s.get(JobRecord, old.job_id).finished_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=25)
            s.get(WebhookDelivery, d.delivery_id).next_attempt_at = dt.datetime.now(dt.UTC)
        allowed.step()
        [(d, attempts)] = jobs.webhook_deliveries(old.job_id, acc)
        assert d.status == "failed" and [a.outcome for a in attempts] == ["retry", "failed"]
        assert "given up after 24 h" in attempts[1].error
        # An event of a job that ended more than 24 h ago (a group reading from the start) is not delivered.
        assert enqueue(sessions, event(old, events_pb2.EVENT_TYPE_CANCELLED)) == "duplicate"
        older = jobs.create_job(acc, "enhance", {}, {"file": "f1"}, webhook_url="http://127.0.0.1:9/hook")
        jobs.cancel_job(older.job_id, acc)
        with sessions.begin() as s:
            s.get(JobRecord, older.job_id).finished_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=25)
        assert enqueue(sessions, event(older, events_pb2.EVENT_TYPE_CANCELLED)) == "too_old"
        # A host that does not resolve may come back: retried, not given up.
        gone = jobs.create_job(acc, "enhance", {}, {"file": "f1"}, webhook_url="http://no-such-host.invalid/")
        jobs.cancel_job(gone.job_id, acc)
        assert enqueue(sessions, event(gone, events_pb2.EVENT_TYPE_CANCELLED)) == "queued"
        allowed.step()
        [(d, attempts)] = jobs.webhook_deliveries(gone.job_id, acc)
        assert d.status == "pending" and attempts[0].outcome == "retry" and "resolution" in attempts[0].error
        allowed.close()
    finally:
        sender.close()


def test_an_event_ahead_of_the_jobs_service_waits_for_the_job_to_end(env, tmp_path):  # noqa: F811
    jobs, _, acc, sessions = env
    receiver = Receiver()
    sender = _sender(sessions, tmp_path, webhook_allow_private=True)
    try:
        job = jobs.create_job(acc, "enhance", {}, {"file": "f1"}, webhook_url=receiver.url("/early"))
        done = event(job, events_pb2.EVENT_TYPE_COMPLETED)
        assert enqueue(sessions, done) == "queued"  # read by the dispatcher before jobs applied it
        sender.step()
        assert receiver.at("/early") == [] and jobs.webhook_deliveries(job.job_id, acc)[0][1] == []
        jobs.apply_event(done)
        with sessions.begin() as s:
            s.query(WebhookDelivery).update({"next_attempt_at": dt.datetime.now(dt.UTC)})
        sender.step()
        [got] = receiver.at("/early")
        assert json.loads(got.body)["status"] == "completed"
    finally:
        sender.close()
        receiver.close()
