"""A real HTTP proxy in front of the gateway that injects faults, for the SDK's retry tests.

Each request is recorded (method, path, headers), then the first queued fault whose method
and path match is applied once:
  ``503`` / ``429``: answered by the proxy, the gateway never sees the request;
  ``drop``: the connection is closed without an answer, the gateway never sees the request;
  ``lost``: the gateway handles the request, then the connection is closed: the work is done
  but the client never hears (what a retry with an Idempotency-Key is for).
Everything else is forwarded unchanged.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class Fault:
    method: str
    path: str
    action: str          # 503 | 429 | drop | lost


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FaultyProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        proxy = self
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=self.upstream, timeout=60)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                path = self.path.split("?", 1)[0]
                proxy.seen.append(Seen(self.command, path, {k.lower(): v for k, v in self.headers.items()}))
                fault = proxy._take(self.command, path)
                if fault and fault.action in ("503", "429"):
                    return self._answer(int(fault.action), {"retry-after": "0"} if fault.action == "429" else {},
                                        json.dumps({"error": {"code": "service_unavailable" if fault.action == "503"
                                                              else "rate_limited", "message": "injected"}}).encode())
                if fault and fault.action == "drop":
                    return self._hang_up()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                r = proxy._http.request(self.command, self.path, content=body, headers=headers)
                if fault and fault.action == "lost":
                    return self._hang_up()
                self._answer(r.status_code, {k: v for k, v in r.headers.items() if k.lower() not in HOP
                                             and k.lower() != "content-encoding"}, r.content)

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-type", headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _hang_up(self) -> None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_POST = do_DELETE = do_PUT = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, method: str, path: str, *actions: str) -> None:
        self.faults.extend(Fault(method, path, a) for a in actions)

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == path]

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for i, f in enumerate(self.faults):
                if f.method == method and f.path == path:
                    return self.faults.pop(i)
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()
