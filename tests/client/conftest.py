"""The client tests' stack: the real services with the product's own pipelines.

One stack for the package (SDK, CLI and results page): a worker runs the real enhance,
separate and diarize pipelines on a short generated two-voice conversation. The three jobs
are made once, by the CLI (``cli_runs``), and the SDK and browser tests reuse them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Account, running_stack
from tests.inference.audiogen import VOICES, conversation

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "clients" / "python"
if str(SDK) not in sys.path:  # the worktree's SDK; `make install` installs the same folder
    sys.path.insert(0, str(SDK))


@pytest.fixture(scope="package")
def client_stack(tmp_path_factory, pg_schemas):
    real = {"TIMBR_WORKER_JOB_TYPES": "enhance,separate,diarize", "TIMBR_WORKER_EXTRA_PIPELINES": "",
            "TIMBR_BACKOFF_BASE_S": "0.2"}
    with running_stack(tmp_path_factory.mktemp("client"), pg_schemas, real) as s:
        yield s


@pytest.fixture(scope="package")
def client_billing(client_stack):
    import grpc

    from services.common.grpc_util import channel
    from services.common.pb.timbr.v1 import billing_pb2_grpc

    ch = channel(f"127.0.0.1:{client_stack.billing_port}")
    grpc.channel_ready_future(ch).result(timeout=30)
    yield billing_pb2_grpc.BillingStub(ch)
    ch.close()


@pytest.fixture
def new_account(client_billing):
    return lambda credits=1000: Account(client_billing, credits)


@pytest.fixture(scope="package")
def dialog_wav(tmp_path_factory) -> Path:
    """About 8 s: two espeak-ng voices (male, female), three turns."""
    conv = conversation(list(VOICES[:2]), 3, seed=3)
    return conv.write(tmp_path_factory.mktemp("audio") / "dialog.wav")


@dataclass
class CliRun:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(args: list[str], url: str, token: str | None, timeout: float = 300) -> CliRun:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIMBR_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SDK), str(ROOT), env.get("PYTHONPATH", "")])
    env["TIMBR_BASE_URL"] = url
    if token:
        env["TIMBR_TOKEN"] = token
    proc = subprocess.run([sys.executable, "-m", "timbr.cli", *args], check=False, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return CliRun(args, proc.returncode, proc.stdout, proc.stderr)


@dataclass
class CliJobs:
    account: Account
    out: Path
    enhance: CliRun
    separate: CliRun
    diarize: CliRun


@pytest.fixture(scope="package")
def cli_runs(client_stack, client_billing, dialog_wav, tmp_path_factory) -> CliJobs:
    """The three commands of the README, run once against the stack with the real pipelines."""
    acc = Account(client_billing, 1000)
    out = tmp_path_factory.mktemp("cli")
    url = client_stack.url
    enhance = run_cli(["enhance", str(dialog_wav), "-o", str(out / "out.wav"), "--eq", "vocal",
                       "--report", str(out / "report.json")], url, acc.token)
    separate = run_cli(["separate", str(dialog_wav), "--type", "dialogue-music-effect", "-o", str(out / "stems"),
                        "--json"], url, acc.token)
    diarize = run_cli(["diarize", str(dialog_wav), "--srt", str(out / "out.srt"), "--num-speakers", "2",
                       "--json-out", str(out / "diarization.json"), "--json"], url, acc.token)
    return CliJobs(acc, out, enhance, separate, diarize)
