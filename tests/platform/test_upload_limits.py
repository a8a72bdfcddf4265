"""Uploads are refused before their body is read: no token (401), a Content-Length over
TIMBR_MAX_UPLOAD_BYTES (413), or a streamed body that passes it (413 while it streams).

Each request sends only the start of its body over a bare socket and waits for the answer: a
gateway that read the whole body first (300 MB to a temp file, issue 11) would never answer.
"""

from __future__ import annotations

import pytest

from tests.support import rawhttp
from tests.support.audio import tone_wav
from tests.support.gateway import serve_gateway

BOUNDARY = b"timbrboundary"
LIMIT = 1 << 20  # the small gateway's TIMBR_MAX_UPLOAD_BYTES


def _part_head(filename: str = "a.wav") -> bytes:
    return (b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename.encode()
            + b"\"\r\nContent-Type: application/octet-stream\r\n\r\n")


def _multipart(data: bytes) -> bytes:
    return _part_head() + data + b"\r\n--" + BOUNDARY + b"--\r\n"


def _headers(token: str | None, length: int | None = None) -> list[tuple[bytes, bytes]]:
    h = [(b"Content-Type", b"multipart/form-data; boundary=" + BOUNDARY)]
    if token:
        h.append((b"Authorization", token.encode()))
    h.append((b"Content-Length", str(length).encode()) if length is not None else (b"Transfer-Encoding", b"chunked"))
    return h


@pytest.fixture(scope="module")
def small_gateway(stack):
    """A second gateway, in this process, on the running stack, with a 1 MiB upload limit."""
    with serve_gateway(stack, max_upload_bytes=LIMIT) as port:
        yield port


@pytest.mark.parametrize("port_of", ["stack", "small"])
def test_no_token_is_401_before_the_body(stack, small_gateway, port_of):
    port = stack.gateway_port if port_of == "stack" else small_gateway
    r = rawhttp.request(port, "POST", "/v1/upload", _headers(None, 300_000_000), _part_head() + b"\0" * 65536,
                        timeout_s=10)
    assert r.status == 401 and b"unauthorized" in r.body


def test_bad_token_is_401_before_the_body(stack):
    r = rawhttp.request(stack.gateway_port, "POST", "/v1/upload", _headers("TBR_nope", 300_000_000),
                        _part_head() + b"\0" * 65536, timeout_s=10)
    assert r.status == 401


def test_declared_length_over_the_limit_is_413_before_the_body(stack, make_account):
    acc = make_account(0)
    r = rawhttp.request(stack.gateway_port, "POST", "/v1/upload", _headers(acc.token, 3 * 1024**3),
                        _part_head() + b"\0" * 65536, timeout_s=10)
    assert r.status == 413 and b"payload_too_large" in r.body


def test_streamed_body_over_the_limit_is_413_while_it_streams(small_gateway, make_account):
    acc = make_account(0)
    chunk = b"\0" * 65536
    body = b"%x\r\n%s\r\n" % (len(_part_head()), _part_head())
    body += b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2 * LIMIT // len(chunk)))
    # ... and the chunked body is never finished: only a gateway that counts can answer.
    r = rawhttp.request(small_gateway, "POST", "/v1/upload", _headers(acc.token), body, timeout_s=10)
    assert r.status == 413 and b"payload_too_large" in r.body


def test_under_the_limit_is_stored_and_a_form_without_file_is_422(small_gateway, make_account):
    acc = make_account(0)
    data = tone_wav(10.0)  # 320 KB
    body = _multipart(data)
    r = rawhttp.request(small_gateway, "POST", "/v1/upload", _headers(acc.token, len(body)), body)
    assert r.status == 200, r.body
    other = b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"nope\"\r\n\r\nx\r\n--" + BOUNDARY + b"--\r\n"
    r = rawhttp.request(small_gateway, "POST", "/v1/upload", _headers(acc.token, len(other)), other)
    assert r.status == 422 and b"validation_error" in r.body
