"""No 500 on any header or query value: what a client sends is refused with a 4xx or ignored.

Found by probing a running stack (issue 11): a non-ASCII ``signature`` made hmac.compare_digest
raise, and a client ``x-request-id`` with non-ASCII, control characters or 20 KB went unchecked
into gRPC metadata. A property test then sends arbitrary bytes in the same places.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import rawhttp
from tests.support.api import upload_ok, wait_job
from tests.support.audio import tone_wav

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@pytest.fixture(scope="module")
def signed(stack, billing_stub):
    """A completed job's signed result URL (path and query) and the account that owns it."""
    import httpx

    from tests.conftest import Account

    acc = Account(billing_stub, 10)
    with httpx.Client(base_url=stack.url, timeout=60) as api:
        f = upload_ok(api, acc.headers, tone_wav(0.5))
        job_id = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": f["file_id"]}).json()["job_id"]
        url = wait_job(api, acc.headers, job_id)["results"][0]["url"]
    path, _, query = url.removeprefix(stack.url).partition("?")
    return path, dict(kv.split("=", 1) for kv in query.split("&")), acc, job_id


@pytest.mark.parametrize("signature", ["é" * 64, "\u2603", "%00", "0" * 5000, "\U0001f600abc"])
def test_non_ascii_or_odd_signature_is_403_not_500(api, signed, signature):
    path, query, _, _ = signed
    r = api.get(f"{path}?expires={query['expires']}&signature={quote(signature)}")
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "invalid_signature"


@pytest.mark.parametrize("signature", ["\x80", "\u2603", "é" * 64])
def test_non_ascii_viewer_link_signature_is_403_not_500(api, signed, signature):
    """The results page's signed link too (the property test below found a 500 there)."""
    _, _, acc, job_id = signed
    r = api.get(f"/v1/jobs/{job_id}/view?account={acc.account_id}&expires=9999999999&signature={quote(signature)}")
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "invalid_signature"


def test_webhook_receivers_verify_odd_signature_headers_as_false():
    """``signing.verify`` is what a receiver runs on a header anyone can send."""
    from services.webhooks import signing

    body, now = b"{}", 1_800_000_000
    for header in (f"t={now},v1=\u2603", f"t={now},v1=" + "é" * 64, "t=x,v1=00", "garbage"):
        assert signing.verify("whsec_x", header, body, now=now) is False
    assert signing.verify("whsec_x", signing.sign("whsec_x", body, now), body, now=now) is True


@pytest.mark.parametrize("value", ["caf\xc3\xa9-\xe2\x98\x83".encode("latin-1"), b"a\x01b\x7fc", b"\x00",
                                   b"x" * 20_000, b"a b", b"id\tab"])
def test_bad_request_ids_are_replaced_not_passed_on(stack, signed, value):
    _, _, acc, job_id = signed
    r = rawhttp.request(stack.gateway_port, "GET", f"/v1/jobs/{job_id}",
                        [(b"Authorization", acc.token.encode()), (b"x-request-id", value)])
    assert r.status != 500
    if r.status == 200:  # the server took the header: the id it used is a fresh, clean one
        assert REQUEST_ID.fullmatch(r.headers["x-request-id"]) and r.headers["x-request-id"].encode() != value


def test_a_clean_request_id_is_kept(api, signed):
    _, _, acc, job_id = signed
    r = api.get(f"/v1/jobs/{job_id}", headers={**acc.headers, "x-request-id": "client-42.a:b"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "client-42.a:b"


@pytest.mark.parametrize("job_id", ["%00", "job_%00x", "%C3%A9t%C3%A9", "x" * 5000, "%ff%fe"])
def test_odd_ids_in_the_path_are_404(api, signed, job_id):
    _, _, acc, _ = signed
    for method, path in (("get", f"/v1/jobs/{job_id}"), ("post", f"/v1/jobs/{job_id}/cancel"),
                         ("delete", f"/v1/jobs/{job_id}"), ("get", f"/v1/jobs/{job_id}/webhooks"),
                         ("delete", f"/v1/files/{job_id}"), ("get", f"/v1/files/{job_id}")):
        r = getattr(api, method)(path, headers=acc.headers)
        assert r.status_code == 404, (path, r.text)


def test_odd_file_ids_in_the_body_are_404(api, signed):
    _, _, acc, _ = signed
    for file_id in ("\x00", "file_\u2603", "f" * 5000):
        r = api.post("/v1/audio/enhance", headers=acc.headers, json={"file_id": file_id})
        assert r.status_code in (404, 422), r.text


# Header bytes a client can put on the wire (h11 refuses CR, LF and NUL on both ends).
header_bytes = st.binary(min_size=0, max_size=300).map(
    lambda b: bytes(c for c in b if c not in (0, 10, 13)).strip(b" \t"))
query_text = st.text(max_size=200)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request_id=header_bytes, authorization=header_bytes, signature=query_text, expires=query_text,
       limit=query_text)
def test_property_no_header_or_query_value_gives_500(stack, signed, request_id, authorization, signature,
                                                     expires, limit):
    path, query, acc, job_id = signed
    headers = [(b"x-request-id", request_id)] if request_id else []
    probes = [
        ("GET", f"{path}?expires={quote(expires)}&signature={quote(signature)}", headers),
        ("GET", f"{path}?expires={query['expires']}&signature={quote(signature)}", headers),
        ("GET", f"/v1/jobs?limit={quote(limit)}", headers + [(b"Authorization", acc.token.encode())]),
        ("GET", f"/v1/jobs/{job_id}", headers + ([(b"Authorization", authorization)] if authorization else [])),
    ]
    for method, target, hdrs in probes:
        r = rawhttp.request(stack.gateway_port, method, target, hdrs)
        assert r.status < 500, (target, hdrs, r.status, r.body[:300])


def _operations(api) -> list[tuple[str, str, list[dict]]]:
    spec = api.get("/openapi.json").json()
    return [(method.upper(), path, op.get("parameters", [])) for path, ops in sorted(spec["paths"].items())
            for method, op in sorted(ops.items())]


@pytest.fixture(scope="module")
def operations(stack):
    import httpx

    with httpx.Client(base_url=stack.url, timeout=30) as api:
        return _operations(api)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_no_parameter_of_any_operation_gives_500(stack, signed, operations, data):
    """Every operation of the OpenAPI document, with arbitrary text in each of its path, query
    and header parameters, an arbitrary x-request-id and a good, odd or missing token."""
    _, _, acc, _ = signed
    method, path, params = data.draw(st.sampled_from(operations), label="operation")
    query, headers = [], [(b"x-request-id", data.draw(header_bytes, label="x-request-id"))]
    for p in params:
        value = data.draw(query_text, label=p["name"])
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", quote(value, safe="/" if p["name"] == "key" else "") or "x")
        elif p["in"] == "query":
            query.append(f"{quote(p['name'])}={quote(value)}")
        elif p["in"] == "header":
            headers.append((p["name"].encode(), value.encode("utf-8")))
    auth = data.draw(st.one_of(st.just(acc.token.encode()), header_bytes), label="authorization")
    headers = [(k, v) for k, v in headers + [(b"Authorization", auth)] if v]
    body = b"{}" if method in ("POST", "PUT") else b""
    if body:
        headers += [(b"Content-Type", b"application/json"), (b"Content-Length", b"2")]
    target = path + ("?" + "&".join(query) if query else "")
    r = rawhttp.request(stack.gateway_port, method, target, headers, body)
    assert r.status < 500, (method, target, headers, r.status, r.body[:300])
