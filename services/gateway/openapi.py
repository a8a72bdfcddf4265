"""The OpenAPI document, finished so that generated clients work.

FastAPI describes the happy paths well but not the edge: its 422 schema is not the body this
gateway sends, errors raised in dependencies (401, 503) are undeclared, and file responses
claim JSON. ``finish`` fixes that in one place: every 4xx/5xx response of every operation is
``{"error": {...}}`` (``ErrorBody``), 401 is declared on every authenticated operation, 422 on
every one that takes input, 429 on every /v1 operation (rate limits), 500 and 503 on every
one that reaches billing or jobs, and downloads are binary.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
ERROR_SCHEMAS = {
    "ErrorDetail": {
        "type": "object", "required": ["code", "message"], "additionalProperties": True,
        "properties": {
            "code": {"type": "string", "description": "Stable machine-readable code, e.g. `insufficient_credits`"},
            "message": {"type": "string", "description": "Human-readable explanation"},
            "details": {"type": "array", "description": "validation_error: one entry per invalid field",
                        "items": {"type": "object", "properties": {"field": {"type": "string"},
                                                                   "message": {"type": "string"}}}},
            "required": {"type": "integer", "description": "insufficient_credits: credits the job needs"},
            "available": {"type": "integer", "description": "insufficient_credits: credits available"},
        },
    },
    "ErrorBody": {"type": "object", "required": ["error"], "properties": {"error": {
        "$ref": "#/components/schemas/ErrorDetail"}}},
}
DEFAULT_DESCRIPTIONS = {
    400: "Malformed request", 401: "Missing, unknown or revoked token (`unauthorized`)",
    402: "Not enough credits (`insufficient_credits`)", 403: "Bad or expired signature",
    404: "Not found (`not_found`)", 409: "Conflict with the current state",
    410: "The object expired and was removed (`expired`)", 413: "Body too large (`payload_too_large`)",
    422: "Invalid parameters (`validation_error`, with `details`)", 429: "Too many requests (`rate_limited`)",
    500: "Unexpected error (`internal_error`)", 503: "Billing or jobs unreachable (`service_unavailable`)",
}
# Operations that answer something other than JSON.
BODIES = {
    ("/v1/objects/{key}", "get"): {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    ("/v1/jobs/{job_id}/view", "get"): {"text/html": {"schema": {"type": "string"}}},
}
NO_BACKEND = ("/v1/objects/",)   # served from local storage alone: never 503


def finish(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    components.update(ERROR_SCHEMAS)
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            codes = {int(c) for c in responses if c.isdigit() and int(c) >= 400}
            if op.get("security"):
                codes.add(401)
            if op.get("requestBody") or op.get("parameters"):
                codes.add(422)
            if path.startswith("/v1/"):
                codes.add(429)                      # the per-client rate limit covers every /v1 route
                if not path.startswith(NO_BACKEND):
                    codes |= {500, 503}
            for code in sorted(codes):
                response = responses.setdefault(str(code), {})
                if not response.get("description") or response["description"] == "Validation Error":
                    response["description"] = DEFAULT_DESCRIPTIONS.get(code, "Error")
                response["content"] = {"application/json": {"schema": ERROR_REF}}
            if (path, method) in BODIES and "200" in responses:
                responses["200"]["content"] = BODIES[(path, method)]
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish(get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version,
                description=app.description, routes=app.routes, servers=app.servers))
        return app.openapi_schema

    app.openapi = openapi
