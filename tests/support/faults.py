"""A running stack whose processes can be killed (SIGKILL) and started again as they were, with
a supervisor that restarts any process that dies (as Kubernetes restarts a crashed container),
and the invariants every fault test checks: each job ends, and the ledger balances."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from services.common.pb.timbr.v1 import billing_pb2
from tests.support.billing import settled_balance
from tools.devstack import Stack

TERMINAL = {"completed", "failed", "cancelled"}


@dataclass
class FaultStack(Stack):
    specs: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    restarts: Counter = field(default_factory=Counter)
    _supervisor: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _held: set = field(default_factory=set)

    def _spawn(self, name, module, env):
        self.specs[name] = (module, env)
        return super()._spawn(name, module, env)

    def kill9(self, name: str, down_s: float = 0.0) -> None:
        """SIGKILL ``name``; the supervisor starts it again after ``down_s``."""
        self._held.add(name)
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        threading.Timer(down_s, self._held.discard, args=(name,)).start()

    def respawn(self, name: str) -> None:
        if name == "kafka":
            self.start_kafka()
        else:
            self._spawn(name, *self.specs[name])
        self.restarts[name] += 1

    def supervise(self) -> FaultStack:
        """Restart whatever exits by itself, within a second (restartPolicy: Always)."""
        def loop():
            while not self._stopping.wait(0.5):
                for name, proc in list(self.procs.items()):
                    if proc.poll() is not None and name not in self._held and not self._stopping.is_set():
                        self.respawn(name)

        self._supervisor = threading.Thread(target=loop, daemon=True)
        self._supervisor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor:
            self._supervisor.join(timeout=5)
        super().stop()


def wait_terminal(api, headers: dict, job_ids: list[str], timeout_s: float) -> dict[str, dict]:
    """Every job in an end state within ``timeout_s`` (503s while a service restarts are retried)."""
    deadline = time.monotonic() + timeout_s
    jobs: dict[str, dict] = {}
    while True:
        for job_id in job_ids:
            if job_id in jobs:
                continue
            r = api.get(f"/v1/jobs/{job_id}", headers=headers)
            if r.status_code == 200 and r.json()["status"] in TERMINAL:
                jobs[job_id] = r.json()
        if len(jobs) == len(job_ids):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(f"not ended within {timeout_s} s: {sorted(set(job_ids) - set(jobs))}")
        time.sleep(0.3)


def assert_ledger_balances(billing, account_id: str, granted: int, jobs: dict[str, dict],
                           timeout_s: float = 20.0) -> None:
    """granted = available + reserved + spent, nothing negative, nothing reserved any more, and
    per job one reserve and exactly one settle that matches how it ended (never twice)."""
    b = settled_balance(billing, account_id, timeout_s)
    assert b.available + b.reserved + b.spent == granted, b
    assert min(b.available, b.reserved, b.spent) >= 0, b
    assert b.reserved == 0, f"credits left reserved: {b}"
    entries = billing.ListLedger(billing_pb2.ListLedgerRequest(account_id=account_id, limit=1000),
                                 timeout=10).entries
    kinds: dict[str, list[str]] = {}
    for e in entries:
        if e.job_id:
            kinds.setdefault(e.job_id, []).append(e.kind)
    assert set(kinds) == set(jobs), (sorted(kinds), sorted(jobs))
    for job_id, job in jobs.items():
        settle = "confirm" if job["status"] == "completed" else "release"
        assert sorted(kinds[job_id]) == sorted(["reserve", settle]), (job_id, job["status"], kinds[job_id])
    assert b.spent == sum(j["credits_reserved"] for j in jobs.values() if j["status"] == "completed")
