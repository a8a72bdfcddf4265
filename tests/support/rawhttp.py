"""HTTP over a bare socket, for what a well-behaved client refuses to send: control characters
in headers, a body shorter than its Content-Length, a chunked body left open."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def _read_response(sock: socket.socket) -> RawResponse:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    want = int(headers.get("content-length", "0"))
    while len(body) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawResponse(status, headers, body)


def request(port: int, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"",
            timeout_s: float = 10.0) -> RawResponse:
    """Send exactly these bytes and read the answer (``TimeoutError`` if none comes in time).

    ``body`` may be shorter than the Content-Length sent, or an unfinished chunked body: the
    server must answer without waiting for the rest."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    lines += [k + b": " + v for k, v in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        return _read_response(sock)

