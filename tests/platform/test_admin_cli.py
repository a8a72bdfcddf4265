"""timbr-admin against the running billing service."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def admin(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TIMBR_BILLING_ADDR": f"127.0.0.1:{stack.billing_port}"}
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
