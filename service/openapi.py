"""Error responses in the OpenAPI schema, documented in one place.

Every operation answers errors in the project's envelope (`service.errors.error_body`), so the schema says
so for each of them: 422 (FastAPI's default documents its own `HTTPValidationError`, which we never send),
401/403/429 on every route that needs a key, 404 where the path names a resource, 413 where a body is read,
and the envelope as the content of any other error status a route declares (e.g. 409, 503).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `invalid_input`, `forbidden`.")
    message: str = Field(description="What went wrong, for a person.")
    details: dict[str, Any] = Field(default_factory=dict, description="Structured context (may be empty).")


class ErrorEnvelope(BaseModel):
    """Every error the API answers: `{"error": {"code", "message", "details"}}`."""

    error: ErrorDetail


COMMON = {
    "401": "No API key, or an invalid or revoked one (`unauthorized`).",
    "403": "The key's role may not use this route (`forbidden`; details name the role and the allowed ones).",
    "429": "The key is over its rate limit (`rate_limited`; see `Retry-After`).",
}
WITH_BODY = {"413": "The request body is over `REPLYDESK_MAX_BODY_BYTES` (`payload_too_large`)."}
WITH_ID = {"404": "No such resource (`not_found`)."}
INVALID = "Invalid input (`invalid_input`; `details.problems` lists each field and what is wrong)."


def _envelope(description: str, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    response = dict(existing or {})
    response["description"] = response.get("description") or description
    content = response.get("content") or {}
    content["application/json"] = {"schema": ERROR_REF}
    response["content"] = content
    return response


def document_errors(schema: dict[str, Any], public_paths: frozenset[str]) -> dict[str, Any]:
    """Add the envelope to every error response of `schema` (in place) and return it."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    envelope = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(envelope.pop("$defs", {}))
    components["ErrorEnvelope"] = envelope
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = op.setdefault("responses", {})
            extra: dict[str, str] = {}
            if path not in public_paths:
                extra.update(COMMON)
            if "requestBody" in op or method in {"post", "put", "patch"}:
                extra.update(WITH_BODY)
            if "{" in path:
                extra.update(WITH_ID)
            if "422" in responses or op.get("parameters") or "requestBody" in op:
                extra["422"] = INVALID
            for status, description in extra.items():
                responses[status] = _envelope(description, responses.get(status))
            for status, response in list(responses.items()):
                if status[0] in "45" and status not in extra:
                    responses[status] = _envelope(response.get("description", "Error"), response)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install_openapi(app: FastAPI, public_paths: frozenset[str]) -> None:
    """Wrap `app.openapi`: FastAPI's schema (it rebuilds it when routes change) plus the documented errors."""
    generate = app.openapi
    documented: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not documented or documented[0] is not schema:
            documented[:] = [document_errors(schema, public_paths)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
