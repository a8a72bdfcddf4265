"""The OpenAPI document: valid, every error declared with its real body, and good enough that a
client generated from it (openapi-python-client) uploads, creates jobs and parses errors
against the running gateway."""

from __future__ import annotations

import importlib
import subprocess
import sys
import typing

import httpx
import pytest
from openapi_spec_validator import validate

from tests.support.audio import tone_wav


@pytest.fixture(scope="module")
def spec(client_stack) -> dict:
    return httpx.get(f"{client_stack.url}/openapi.json").json()


def test_document_is_valid_and_declares_every_error_with_its_body(spec):
    validate(spec)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for code, response in op["responses"].items():
                if int(code) >= 400:
                    assert response["content"] == {"application/json": {"schema": {
                        "$ref": "#/components/schemas/ErrorBody"}}}, (path, method, code)
                    assert response["description"], (path, method, code)
            if op.get("security"):
                assert "401" in op["responses"], (path, method)
            if path.startswith("/v1/"):
                assert "429" in op["responses"], (path, method)
            if path.startswith("/v1/") and not path.startswith("/v1/objects/"):
                assert {"500", "503"} <= set(op["responses"]), (path, method)

    upload = spec["paths"]["/v1/upload"]["post"]
    body = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["file"]["format"] == "binary" and body["required"] == ["file"]
    assert {"401", "413", "422", "503"} <= set(upload["responses"])
    for kind in ("enhance", "separate", "diarize"):
        assert {"401", "402", "404", "422", "503"} <= set(spec["paths"][f"/v1/audio/{kind}"]["post"]["responses"])
    download = spec["paths"]["/v1/objects/{key}"]["get"]["responses"]["200"]["content"]
    assert download == {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    assert "viewer_url" in spec["components"]["schemas"]["JobOut"]["properties"]


def test_a_generated_client_works_against_the_gateway(spec, client_stack, new_account, tmp_path):
    import json

    (tmp_path / "openapi.json").write_text(json.dumps(spec))
    (tmp_path / "config.yml").write_text("post_hooks: []\n")
    subprocess.run([sys.executable, "-m", "openapi_python_client", "generate", "--path", "openapi.json",
                    "--output-path", "timbr_generated", "--meta", "none", "--config", "config.yml"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)
    sys.path.insert(0, str(tmp_path))
    try:
        gen = importlib.import_module("timbr_generated")
        types = importlib.import_module("timbr_generated.types")
        models = importlib.import_module("timbr_generated.models")
        upload = importlib.import_module("timbr_generated.api.files.upload_v1_upload_post")
        enhance = importlib.import_module("timbr_generated.api.audio.enhance_v1_audio_enhance_post")
        account = importlib.import_module("timbr_generated.api.jobs.account_v1_account_get")
    finally:
        sys.path.remove(str(tmp_path))

    acc = new_account(1)
    client = gen.AuthenticatedClient(base_url=client_stack.url, token=acc.token)
    me = account.sync(client=client)
    assert isinstance(me, models.AccountOut) and me.available_credits == 1

    body = models.UploadV1UploadPostBody(file=types.File(payload=tone_wav(2.0), file_name="tone.wav"))
    f = upload.sync(client=client, body=body)
    assert isinstance(f, models.FileOut) and f.duration == 2.0, f

    enhance_body = typing.get_type_hints(enhance.sync_detailed)["body"]     # whatever the schema is named
    too_poor = enhance.sync_detailed(client=client, body=enhance_body(file_id=f.file_id))
    assert too_poor.status_code == 402 and isinstance(too_poor.parsed, models.ErrorBody)
    assert too_poor.parsed.error.code == "insufficient_credits"
    assert too_poor.parsed.error.required == 2 and too_poor.parsed.error.available == 1

    missing = enhance.sync_detailed(client=client, body=enhance_body(file_id="file_nope"))
    assert missing.status_code == 404 and missing.parsed.error.code == "file_not_found"

    bad = enhance.sync_detailed(client=client, body=enhance_body(file_id=f.file_id, noise_reduction=3))
    assert bad.status_code == 422 and bad.parsed.error.code == "validation_error"
    assert bad.parsed.error.details[0].field == "noise_reduction"

    anonymous = account.sync_detailed(client=gen.Client(base_url=client_stack.url))
    assert anonymous.status_code == 401 and anonymous.parsed.error.code == "unauthorized"
