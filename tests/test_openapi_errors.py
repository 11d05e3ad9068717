"""The OpenAPI schema documents every error response in the project's envelope, and the envelope it
documents is the one the API actually sends."""

from __future__ import annotations

import pytest

from service.openapi import ERROR_REF, ErrorEnvelope

METHODS = {"get", "post", "put", "patch", "delete"}


def _operations(app):
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def test_every_error_response_of_every_operation_is_the_envelope(app):
    for path, method, op in _operations(app):
        for status, response in op["responses"].items():
            if status[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert schema == ERROR_REF, f"{method.upper()} {path} {status}"


def test_every_route_behind_a_key_documents_401_403_and_429(app):
    for path, method, op in _operations(app):
        if path == "/health":
            assert not {"401", "403"} & op["responses"].keys()
            continue
        assert {"401", "403", "429"} <= op["responses"].keys(), f"{method.upper()} {path}"


def test_framework_validation_schemas_are_not_documented_since_they_are_never_sent(app):
    schemas = app.openapi()["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ErrorEnvelope" in schemas


@pytest.mark.parametrize(
    "call",
    [
        lambda c, a: a.get("/v1/queue"),  # 401
        lambda c, a: c.get("/v1/nope"),  # 404
        lambda c, a: c.delete("/v1/queue"),  # 405
        lambda c, a: c.post("/v1/messages", json={}),  # 422
        lambda c, a: c.get("/v1/messages/0"),  # 422 (id out of range)
    ],
)
def test_the_errors_sent_match_the_documented_envelope(client, anon_client, call):
    response = call(client, anon_client)
    assert response.status_code >= 400
    ErrorEnvelope.model_validate(response.json())
