"""The OpenAPI schema is one that generated clients can use: every `$ref` resolves, there is a server, every
operation documents the error answers it can really give (decided from the route's own properties), `/health`
needs no key while channel callbacks also take `?api_key=`, the channel webhooks document the bodies and
signature headers the platforms send, and the outbound webhooks ReplyDesk POSTs are described in the OpenAPI
3.1 `webhooks` section, one entry for every event type the code emits. `make lint` runs Redocly over it.
"""

from __future__ import annotations

import ast
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute, iter_route_contexts

from service.auth.deps import PUBLIC_PATHS, QUERY_KEY_PREFIXES
from service.openapi import (
    CHANNEL_WEBHOOKS,
    CONFLICTS,
    DELIVERY_HEADERS,
    HUB_PARAMETERS,
    METHODS,
    OUTBOUND_EVENTS,
    QUERY_KEY,
    WebhookEnvelope,
)
from service.settings import REPO_ROOT

SERVICE = REPO_ROOT / "service"


@pytest.fixture(scope="module")
def spec(app) -> dict[str, Any]:
    return app.openapi()


def _operations(spec: dict[str, Any]):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def _refs(node: Any, where: str = "#"):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from _refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, f"{where}/{i}")


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"external $ref {ref!r}: the served schema must be self-contained"
    node: Any = spec
    for part in ref[2:].split("/"):
        part = unquote(part).replace("~1", "/").replace("~0", "~")
        node = node[part]  # KeyError: a dangling reference
    return node


# -- references, servers, metadata -------------------------------------------------------------------------


def test_every_ref_anywhere_in_the_schema_resolves(spec):
    refs = list(_refs(spec))
    assert refs, "the walk found no $ref at all: it is not walking the schema"
    dangling = []
    for where, ref in refs:
        try:
            _resolve(spec, ref)
        except KeyError:
            dangling.append(f"{where} -> {ref}")
    assert not dangling, dangling


def test_the_article_upsert_body_is_a_usable_schema_not_a_dangling_reference(spec):
    body = spec["paths"]["/v1/kb/articles/{article_id}"]["put"]["requestBody"]["content"]
    schema = body["application/json"]["schema"]
    schema = _resolve(spec, schema["$ref"]) if "$ref" in schema else schema
    assert {"title", "locale", "intents", "url", "summary", "updated_at", "body"} <= set(schema["required"])
    assert "text/markdown" in body


def test_the_schema_names_a_server_so_generated_clients_have_a_base_url(spec):
    assert spec["servers"] and spec["servers"][0]["url"] == "/"


def test_the_schema_is_openapi_3_1_with_a_license(spec):
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["license"]["identifier"] == "Apache-2.0"


# -- error answers -----------------------------------------------------------------------------------------


def _schema_routes(app) -> list[tuple[str, str, Any]]:
    """(path, method, route) of every API route in the schema, included routers walked as FastAPI does."""
    out: list[tuple[str, str, Any]] = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            methods = sorted(m.lower() for m in route.methods or ())
            out.extend((str(route.path_format), m, route) for m in methods if m in METHODS)
    return out


def test_every_operation_documents_the_error_answers_its_route_can_give(app, spec):
    """Read from the route objects, not from the schema: a key (401/403/429, and 503 since the key lookup
    reads the database), a body method (413), a path id (404), anything FastAPI validates (422)."""
    routes = _schema_routes(app)
    assert len(routes) == sum(1 for _ in _operations(spec))
    for path, method, route in routes:
        documented = set(spec["paths"][path][method]["responses"])
        where = f"{method.upper()} {path}"
        validated = bool(get_flat_params(route.dependant)) or route.body_field is not None
        if path in PUBLIC_PATHS:
            assert not {"401", "403", "429", "503"} & documented, where
        else:
            assert {"401", "403", "429", "503"} <= documented, where
        assert ("413" in documented) == (method in {"post", "put", "patch"}), where
        assert ("404" in documented) == bool(route.param_convertors), where
        if validated:
            assert "422" in documented, where
        assert ("409" in documented) == ((method, path) in CONFLICTS), where


def test_routes_that_validate_nothing_do_not_claim_a_422():
    """The Meta handshake reads its `hub.*` parameters itself and answers 403 when they are wrong."""
    from service.openapi import error_answers

    assert "422" not in error_answers("/v1/channels/whatsapp/webhook", "get", {"responses": {}}, public=False)
    assert "422" in error_answers("/v1/queue", "get", {"parameters": [{"name": "limit"}]}, public=False)


def test_every_conflict_documented_is_an_operation_that_exists(spec):
    for method, path in CONFLICTS:
        assert method in spec["paths"].get(path, {}), (
            f"CONFLICTS names {method.upper()} {path}: no such route"
        )


def test_rate_limits_and_outages_tell_the_client_when_to_retry(spec):
    for path, method, op in _operations(spec):
        for status in ("429", "503"):
            if status in op["responses"]:
                assert "Retry-After" in op["responses"][status]["headers"], (
                    f"{method.upper()} {path} {status}"
                )


def test_no_framework_detail_schema_is_documented_anywhere(spec):
    """422 answers are the envelope (`{"error": ...}`), never FastAPI's `{"detail": [...]}`."""
    assert not any(ref.endswith("/HTTPValidationError") for _, ref in _refs(spec))
    for path, method, op in _operations(spec):
        schema = op["responses"].get("422", {}).get("content", {}).get("application/json", {}).get("schema")
        if schema is not None:
            assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, f"{method.upper()} {path}"


# -- security ----------------------------------------------------------------------------------------------


def test_health_needs_no_key_in_the_schema_as_in_the_code(spec, anon_client):
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert anon_client.get("/health").status_code == 200


def test_channel_callbacks_accept_the_key_as_a_bearer_header_or_as_api_key_in_the_query(spec):
    scheme = spec["components"]["securitySchemes"][QUERY_KEY]
    assert scheme == {**scheme, "type": "apiKey", "in": "query", "name": "api_key"}
    channel_ops = 0
    for path, method, op in _operations(spec):
        if path.startswith(QUERY_KEY_PREFIXES):
            channel_ops += 1
            assert op["security"] == [{"HTTPBearer": []}, {QUERY_KEY: []}], f"{method.upper()} {path}"
        elif path not in PUBLIC_PATHS:
            assert op["security"] == [{"HTTPBearer": []}], f"{method.upper()} {path}"
    assert channel_ops, "no channel route in the schema"


def test_the_query_key_the_schema_declares_is_the_one_the_service_reads(app, spec):
    """A key in `?api_key=` authenticates a channel route (an invalid one is refused as unauthorized, not as
    missing), and is ignored elsewhere."""
    from fastapi.testclient import TestClient

    client = TestClient(app)
    name = spec["components"]["securitySchemes"][QUERY_KEY]["name"]
    on_channel = client.post("/v1/channels/whatsapp/webhook", params={name: "rdk_wrong"}, content=b"{}")
    elsewhere = client.get("/v1/queue", params={name: "rdk_wrong"})
    assert on_channel.status_code == 401 and "invalid" in on_channel.json()["error"]["message"]
    assert elsewhere.status_code == 401 and "missing" in elsewhere.json()["error"]["message"]


# -- channel webhooks (inbound) ----------------------------------------------------------------------------


def _mounted(spec: dict[str, Any]):
    hooks = [hook for hook in CHANNEL_WEBHOOKS if hook.path in spec["paths"]]
    assert hooks, "no channel webhook route is mounted"
    return hooks


def test_channel_webhooks_document_the_body_the_platform_sends_with_a_doc_citing_example(spec):
    for hook in _mounted(spec):
        body = spec["paths"][hook.path]["post"]["requestBody"]
        media = body["content"][hook.media_type]
        assert media["schema"]["type"] == "object" and media["example"], hook.path
        assert hook.doc in body["description"], hook.path
        for field in media["schema"]["required"]:
            assert field in media["example"], f"{hook.path}: example lacks required {field}"


def test_twilio_posts_a_form_and_the_meta_platforms_json(spec):
    media = {hook.path: hook.media_type for hook in CHANNEL_WEBHOOKS}
    assert media["/v1/channels/twilio/webhook"] == "application/x-www-form-urlencoded"
    assert {media[f"/v1/channels/{c}/webhook"] for c in ("whatsapp", "messenger", "instagram")} == {
        "application/json"
    }


def test_channel_webhooks_document_their_signature_headers(spec):
    expected = {
        "whatsapp": "x-hub-signature-256",
        "messenger": "x-hub-signature-256",
        "instagram": "x-hub-signature-256",
        "chatwoot": "x-chatwoot-signature",
        "twilio": "x-twilio-signature",
    }
    for hook in _mounted(spec):
        params = spec["paths"][hook.path]["post"]["parameters"]
        headers = [p["name"].lower() for p in params if p["in"] == "header"]
        assert expected[hook.path.split("/")[3]] in headers, hook.path
        assert len(headers) == len(set(headers)), f"{hook.path}: a header documented twice: {headers}"


def test_meta_handshakes_document_the_hub_parameters(spec):
    handshakes = [hook for hook in _mounted(spec) if hook.handshake and "get" in spec["paths"][hook.path]]
    assert handshakes, "no Meta handshake route is mounted"
    for hook in handshakes:
        get = spec["paths"][hook.path]["get"]
        query = {p["name"] for p in get["parameters"] if p["in"] == "query"}
        assert {"hub.mode", "hub.verify_token", "hub.challenge"} <= query, hook.path
        assert "text/plain" in get["responses"]["200"]["content"], hook.path
    assert {p["name"] for p in HUB_PARAMETERS} == {"hub.mode", "hub.verify_token", "hub.challenge"}


def test_the_documented_meta_handshake_is_the_one_the_service_answers():
    from service.integrations.adapters.meta import handshake

    example = {p["name"]: p.get("example", "subscribe") for p in HUB_PARAMETERS}
    assert handshake(example, example["hub.verify_token"]) == example["hub.challenge"]


NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _parse(path: str, example: dict[str, Any]):
    """The service's own parser for the platform's payload."""
    from service.integrations.adapters import chatwoot, meta, twilio

    channel = path.split("/")[3]
    if channel == "whatsapp":
        return meta.parse_whatsapp(example, NOW)
    if channel in ("messenger", "instagram"):
        return meta.parse_messenger(example, NOW)
    if channel == "chatwoot":
        return chatwoot.parse_chatwoot(example, NOW).webhook
    return twilio.parse_twilio(example, NOW)


@pytest.mark.parametrize("hook", CHANNEL_WEBHOOKS, ids=lambda h: h.path.split("/")[3])
def test_each_documented_example_is_a_customer_message_the_service_ingests(hook):
    parsed = _parse(hook.path, hook.example)
    assert len(parsed.messages) == 1 and not parsed.skipped, parsed


# -- outbound webhooks -------------------------------------------------------------------------------------


def _emitted() -> tuple[dict[str, set[str]], set[str]]:
    """Event types the code emits (`<log>.emit(session, "<type>", {...})`), each with the `data` keys of its
    literal payloads, and the prefixes of the types built by f-strings (`f"sla.{name}"`)."""
    literal: dict[str, set[str]] = {}
    prefixes: set[str] = set()
    for source in SERVICE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text("utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "emit" or len(node.args) < 2:
                continue
            type_arg = node.args[1]
            if isinstance(type_arg, ast.Constant) and isinstance(type_arg.value, str):
                keys = literal.setdefault(type_arg.value, set())
                if len(node.args) > 2 and isinstance(node.args[2], ast.Dict):
                    keys.update(str(k.value) for k in node.args[2].keys if isinstance(k, ast.Constant))
            elif isinstance(type_arg, ast.JoinedStr):
                head = type_arg.values[0]
                assert isinstance(head, ast.Constant), f"{source}: an event type with no literal prefix"
                prefixes.add(str(head.value))
            else:
                raise AssertionError(f"{source}:{node.lineno}: emit() with a type the test cannot read")
    return literal, prefixes


def test_every_event_type_emitted_in_the_code_is_documented_with_its_data_fields():
    documented = {event.type: event for event in OUTBOUND_EVENTS}
    literal, prefixes = _emitted()
    assert {"message.received", "message.outbound"} <= set(literal), "the scan found too few emit() calls"
    for type_, keys in literal.items():
        assert type_ in documented, f"{type_!r} is emitted but missing from OUTBOUND_EVENTS"
        properties = set(documented[type_].data["properties"])
        assert keys <= properties, f"{type_}: data fields {sorted(keys - properties)} are not documented"
    for prefix in prefixes:
        assert any(t.startswith(prefix) for t in documented), (
            f"events `{prefix}*` are emitted, none documented"
        )


def test_every_documented_event_type_is_one_the_code_emits():
    literal, prefixes = _emitted()
    for event in OUTBOUND_EVENTS:
        assert event.type in literal or any(event.type.startswith(p) for p in prefixes), event.type


def test_the_webhooks_section_has_one_signed_post_of_the_envelope_per_event(spec):
    webhooks = spec["webhooks"]
    assert list(webhooks) == [event.type for event in OUTBOUND_EVENTS]
    for event in OUTBOUND_EVENTS:
        post = webhooks[event.type]["post"]
        media = post["requestBody"]["content"]["application/json"]
        envelope_ref, own = media["schema"]["allOf"]
        assert envelope_ref == {"$ref": "#/components/schemas/WebhookEnvelope"}
        assert own["properties"]["type"] == {"const": event.type}
        assert media["example"]["type"] == event.type
        WebhookEnvelope.model_validate(media["example"])
        headers = {p["name"] for p in post["parameters"] if p["in"] == "header"}
        assert {"X-ReplyDesk-Signature", "X-ReplyDesk-Event-Id"} <= headers, event.type
        assert {"2XX", "4XX"} <= set(post["responses"]), event.type


@pytest.mark.parametrize("event", OUTBOUND_EVENTS, ids=lambda e: e.type)
def test_each_event_example_has_the_fields_its_data_schema_requires(event):
    properties, required = set(event.data["properties"]), set(event.data["required"])
    assert required <= set(event.example) <= properties, event.type


def test_the_documented_delivery_headers_are_the_ones_a_delivery_carries():
    from service.signing import signed_headers

    sent = signed_headers(
        "whsec", 1767603600, b"{}", event_id=981, event_type="message.received", delivery_id="d-1"
    )
    transport = {"Content-Type", "User-Agent"}
    assert {h.name for h in DELIVERY_HEADERS} == set(sent) - transport


def test_the_documented_envelope_is_the_body_a_delivery_carries():
    from service.db.models import Event
    from service.workflow.webhooks import envelope

    event = Event(
        id=981, type="message.status", conversation_id=42, message_id=1002, payload={}, created_at=NOW
    )
    body = envelope(event)
    assert set(body) == set(WebhookEnvelope.model_fields)
    WebhookEnvelope.model_validate(body)


# -- redocly -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_redocly_lint_finds_no_error_and_no_warning_in_the_served_schema():
    """`make lint` runs this script; it fails (never skips) when npm cannot install the pinned CLI."""
    script = Path(REPO_ROOT / "scripts" / "openapi_lint.sh")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "Your API description is valid" in output, output[-6000:]
