"""timbr-admin: accounts, tokens and credits over the billing gRPC API; webhook and retention
settings over the jobs one.

    timbr-admin create-account "Acme" --credits 3600   # prints the account id and a token
    timbr-admin issue-token ACCOUNT_ID [--label ci]
    timbr-admin revoke-token TOKEN_ID
    timbr-admin grant ACCOUNT_ID 600 [--reason promo]
    timbr-admin balance ACCOUNT_ID
    timbr-admin ledger ACCOUNT_ID [--limit 50]
    timbr-admin tokens ACCOUNT_ID
    timbr-admin webhook ACCOUNT_ID [--url URL | --clear] [--rotate-secret]   # default webhook, its secret
    timbr-admin retention ACCOUNT_ID DAYS          # keep uploads and results DAYS days (0: the default)

The billing address comes from TIMBR_BILLING_ADDR (default 127.0.0.1:50051); webhook and
retention settings are kept by the jobs service, at TIMBR_JOBS_ADDR (127.0.0.1:50052).
"""

from __future__ import annotations

import argparse
import json
import sys

import grpc
from google.protobuf.json_format import MessageToDict

from services.common.grpc_util import channel
from services.common.netguard import TargetRefused, resolve
from services.common.pb.timbr.v1 import billing_pb2 as pb
from services.common.pb.timbr.v1 import billing_pb2_grpc as pb_grpc
from services.common.pb.timbr.v1 import jobs_pb2 as jobs_pb
from services.common.pb.timbr.v1 import jobs_pb2_grpc as jobs_pb_grpc
from services.common.settings import CommonSettings


def _print(message) -> None:
    print(json.dumps(MessageToDict(message, preserving_proto_field_name=True,
                                   always_print_fields_with_no_presence=True), indent=2))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="timbr-admin", description="Manage Timbr accounts, tokens and credits.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create-account", help="create an account and its first token")
    c.add_argument("name")
    c.add_argument("--credits", type=int, default=0, help="credits to grant at once")
    t = sub.add_parser("issue-token", help="issue a new token for an account")
    t.add_argument("account_id")
    t.add_argument("--label", default="")
    r = sub.add_parser("revoke-token", help="revoke a token by its id")
    r.add_argument("token_id")
    g = sub.add_parser("grant", help="grant credits")
    g.add_argument("account_id")
    g.add_argument("credits", type=int)
    g.add_argument("--reason", default="admin grant")
    b = sub.add_parser("balance", help="show available, reserved and spent credits")
    b.add_argument("account_id")
    lg = sub.add_parser("ledger", help="show the newest ledger entries")
    lg.add_argument("account_id")
    lg.add_argument("--limit", type=int, default=50)
    tk = sub.add_parser("tokens", help="list an account's tokens")
    tk.add_argument("account_id")
    w = sub.add_parser("webhook", help="show or set an account's default webhook URL and signing secret")
    w.add_argument("account_id")
    target = w.add_mutually_exclusive_group()
    target.add_argument("--url", help="called when a job without its own webhook_url ends")
    target.add_argument("--clear", action="store_true", help="remove the default webhook")
    w.add_argument("--rotate-secret", action="store_true", help="make a new signing secret")
    rt = sub.add_parser("retention", help="set how many days an account's uploads and results are kept")
    rt.add_argument("account_id")
    rt.add_argument("days", type=int, help="1..3650, or 0 for the service default")
    return p


def run_jobs(args: argparse.Namespace, jobs: jobs_pb_grpc.JobsStub, settings: CommonSettings) -> None:
    """The account settings the jobs service keeps: webhook and retention."""
    if args.command == "webhook":
        if args.url is None and not args.clear and not args.rotate_secret:
            _print(jobs.GetAccountSettings(jobs_pb.GetAccountSettingsRequest(account_id=args.account_id)))
            return
        current = jobs.GetAccountSettings(jobs_pb.GetAccountSettingsRequest(account_id=args.account_id))
        url = "" if args.clear else current.webhook_url if args.url is None else args.url
        if url:
            resolve(url, settings.webhook_allow_private)  # TargetRefused: refused here as the API would
        _print(jobs.SetAccountWebhook(jobs_pb.SetAccountWebhookRequest(
            account_id=args.account_id, webhook_url=url, rotate_secret=args.rotate_secret)))
    elif args.command == "retention":
        _print(jobs.SetAccountRetention(jobs_pb.SetAccountRetentionRequest(account_id=args.account_id,
                                                                           retention_days=args.days)))


def run(args: argparse.Namespace, stub: pb_grpc.BillingStub) -> None:
    if args.command == "create-account":
        account = stub.CreateAccount(pb.CreateAccountRequest(name=args.name))
        issued = stub.IssueToken(pb.IssueTokenRequest(account_id=account.account_id, label="default"))
        if args.credits:
            stub.GrantCredits(pb.GrantCreditsRequest(account_id=account.account_id, credits=args.credits,
                                                     reason="initial grant"))
        balance = stub.GetBalance(pb.GetBalanceRequest(account_id=account.account_id))
        print(json.dumps({"account_id": account.account_id, "name": account.name, "token_id": issued.token_id,
                          "token": issued.token, "available_credits": balance.available}, indent=2))
    elif args.command == "issue-token":
        _print(stub.IssueToken(pb.IssueTokenRequest(account_id=args.account_id, label=args.label)))
    elif args.command == "revoke-token":
        _print(stub.RevokeToken(pb.RevokeTokenRequest(token_id=args.token_id)))
    elif args.command == "grant":
        _print(stub.GrantCredits(pb.GrantCreditsRequest(account_id=args.account_id, credits=args.credits,
                                                        reason=args.reason)))
    elif args.command == "balance":
        _print(stub.GetBalance(pb.GetBalanceRequest(account_id=args.account_id)))
    elif args.command == "ledger":
        _print(stub.ListLedger(pb.ListLedgerRequest(account_id=args.account_id, limit=args.limit)))
    elif args.command == "tokens":
        _print(stub.ListTokens(pb.ListTokensRequest(account_id=args.account_id)))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = CommonSettings()
    if args.command in ("webhook", "retention"):
        with channel(settings.jobs_addr, settings.service_token) as ch:
            try:
                run_jobs(args, jobs_pb_grpc.JobsStub(ch), settings)
            except TargetRefused as exc:
                print(f"error: webhook URL refused: {exc}", file=sys.stderr)
                return 1
            except grpc.RpcError as exc:
                print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
                return 1
        return 0
    with channel(settings.billing_addr, settings.service_token) as ch:
        try:
            run(args, pb_grpc.BillingStub(ch))
        except grpc.RpcError as exc:
            print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
