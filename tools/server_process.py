"""A v2-protocol model server (KServe ModelServer or Triton) as a subprocess, for the tests,
the bench and ``make run``: started in its own process group, ready when ``/v2/health/ready``
answers 200, stopped with every child it spawned, restartable on the same ports."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


class ServerProcess:
    """Subclasses say how to run the server: ``command()`` and ``environment()``."""

    def __init__(self, log_path: Path, http_port: int, grpc_port: int) -> None:
        self.log_path, self.http_port, self.grpc_port = log_path, http_port, grpc_port
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=REPO, env=self.environment(), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout_s: float = 300.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.command()[0]} exited {self.proc.returncode}: {self.tail()}")
            try:
                if httpx.get(f"{self.http}/v2/health/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"model server not ready after {timeout_s} s: {self.tail()}")

    def stop(self, kill: bool = False) -> None:
        """Stop the server and what it spawned (Triton's python-backend stubs): one process group."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""
