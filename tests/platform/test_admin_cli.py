"""timbr-admin against the running billing service."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from services.jobs.models import AccountSettings


def admin(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TIMBR_BILLING_ADDR": f"127.0.0.1:{stack.billing_port}",
           "TIMBR_JOBS_ADDR": f"127.0.0.1:{stack.jobs_port}"}
    return subprocess.run([sys.executable, "-m", "services.billing.admin", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_account_token_grant_balance_ledger_revoke(stack, api):
    created = json.loads(admin(stack, "create-account", "Acme Audio", "--credits", "120").stdout)
    assert created["token"].startswith("TBR_") and created["available_credits"] == 120
    account = created["account_id"]
    assert api.get("/v1/account", headers={"Authorization": created["token"]}).json()["name"] == "Acme Audio"

    assert json.loads(admin(stack, "grant", account, "30").stdout)["available"] == "150"
    balance = json.loads(admin(stack, "balance", account).stdout)
    assert (balance["available"], balance["reserved"], balance["spent"]) == ("150", "0", "0")
    ledger = json.loads(admin(stack, "ledger", account).stdout)["entries"]
    assert [(e["kind"], e["credits"]) for e in ledger] == [("grant", "30"), ("grant", "120")]

    second = json.loads(admin(stack, "issue-token", account, "--label", "ci").stdout)
    tokens = json.loads(admin(stack, "tokens", account).stdout)["tokens"]
    assert {t["label"] for t in tokens} == {"default", "ci"}
    assert json.loads(admin(stack, "revoke-token", second["token_id"]).stdout)["revoked"] is True
    assert api.get("/v1/account", headers={"Authorization": second["token"]}).status_code == 401
    assert api.get("/v1/account", headers={"Authorization": created["token"]}).status_code == 200

    missing = admin(stack, "balance", "acc_missing")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    assert admin(stack, "grant", account, "-5").returncode == 1


def test_webhook_and_retention_settings(stack, api, make_account):
    acc = make_account(1)
    env = {"TIMBR_JOBS_ADDR": f"127.0.0.1:{stack.jobs_port}"}

    def run(*args, **extra):
        return subprocess.run([sys.executable, "-m", "services.billing.admin", *args],
                              env={**os.environ, **env, **extra}, capture_output=True, text=True, timeout=60,
                              check=False)

    shown = json.loads(run("webhook", acc.account_id).stdout)
    assert shown["webhook_url"] == "" and shown["webhook_secret"].startswith("whsec_")
    set_ = json.loads(run("webhook", acc.account_id, "--url", "https://93.184.216.34/hooks/timbr").stdout)
    assert set_["webhook_url"] == "https://93.184.216.34/hooks/timbr" and set_["webhook_secret"] == shown["webhook_secret"]
    seen = api.get("/v1/account/webhook", headers=acc.headers).json()
    assert seen == {"url": "https://93.184.216.34/hooks/timbr", "secret": shown["webhook_secret"]}
    rotated = json.loads(run("webhook", acc.account_id, "--rotate-secret").stdout)
    assert rotated["webhook_secret"] != shown["webhook_secret"] and rotated["webhook_url"] == set_["webhook_url"]
    refused = run("webhook", acc.account_id, "--url", "http://10.0.0.7/x", TIMBR_WEBHOOK_ALLOW_PRIVATE="false")
    assert refused.returncode == 1 and "refused" in refused.stderr
    assert json.loads(run("webhook", acc.account_id, "--clear").stdout)["webhook_url"] == ""

    kept = json.loads(run("retention", acc.account_id, "30").stdout)
    assert kept["retention_days"] == 30 and kept["effective_retention_days"] == 30
    f = api.post("/v1/upload", headers=acc.headers, files={"file": ("a.wav", _wav(), "audio/wav")}).json()
    import datetime as dt

    kept_for = dt.datetime.fromisoformat(f["expires_at"]) - dt.datetime.fromisoformat(f["created_at"])
    assert abs(kept_for - dt.timedelta(days=30)) < dt.timedelta(seconds=5)
    assert run("retention", acc.account_id, "5000").returncode == 1
    assert json.loads(run("retention", acc.account_id, "0").stdout)["effective_retention_days"] == 7


def test_settings_of_an_unknown_account_are_not_found_and_not_stored(stack):
    """Accounts live in Billing: the jobs service shows, makes and stores no settings for an id
    Billing does not know (a typo here made a row, with a signing secret, for no account)."""
    for args in (("webhook", "acc_missing"), ("webhook", "acc_missing", "--rotate-secret"),
                 ("retention", "acc_missing", "30")):
        refused = admin(stack, *args)
        assert refused.returncode == 1 and "NOT_FOUND" in refused.stderr, (args, refused.stderr)
    engine = create_engine(stack.jobs_db)
    with Session(engine) as s:
        assert s.get(AccountSettings, "acc_missing") is None
    engine.dispose()


def _wav() -> bytes:
    from tests.support.audio import tone_wav

    return tone_wav(0.5)
