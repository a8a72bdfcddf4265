"""A real webhook receiver on 127.0.0.1 for the tests: records every request, answers from a
script per path (e.g. ``[503, 503, 200]``, ``["slow", 200]``, ``[410]``), 200 when it runs out."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    script: dict[str, list] = field(default_factory=dict)
    slow_s: float = 5.0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                  body, time.time()))
                steps = receiver.script.get(self.path, [])
                step = steps.pop(0) if steps else 200
                if step == "slow":
                    time.sleep(receiver.slow_s)
                    step = 200
                self.send_response(step)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def wait(self, path: str, count: int, timeout_s: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.at(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: {len(self.at(path))} of {count} requests after {timeout_s} s")
            time.sleep(0.05)
        return self.at(path)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
