"""The trust boundary as one table: every route of the app × every role (and no key at all).

`MATRIX` is the specification (README § Security › Roles shows the same table). Every operation in the app's
OpenAPI schema must have a row, so a new route without one fails `test_every_route_has_a_row`. Each cell is
then checked against the running app: a role outside its row gets 403 `forbidden` naming the role, a role
inside it gets past the role check (whatever the handler then answers to the deliberately empty request), and
no key gets 401, except on the public routes.

Probes are cheap on purpose: ids that do not exist or are out of range and empty bodies reach the handler's
own 404/422 after the role check, so no test data is touched (a role check runs before path, query and body
validation in FastAPI, so a 422 still proves the role was let in).
"""

from __future__ import annotations

import re

import pytest

from service.auth.models import Role

PUBLIC = "public"
IN, AG, ED, EV, AU = "integration", "agent", "editor", "evaluator", "auditor"
ROLES = [r.value for r in Role]

# (method, path) -> roles allowed besides admin. PUBLIC: no key needed.
MATRIX: dict[tuple[str, str], frozenset[str] | str] = {
    ("GET", "/health"): PUBLIC,
    # channels and helpdesks: ingest, receipts, outbound delivery, resolve
    ("POST", "/v1/messages"): frozenset({IN}),
    ("POST", "/v1/messages/{message_id}/status"): frozenset({IN}),
    ("GET", "/v1/channels/whatsapp/webhook"): frozenset({IN}),
    ("POST", "/v1/channels/whatsapp/webhook"): frozenset({IN}),
    ("GET", "/v1/channels/messenger/webhook"): frozenset({IN}),
    ("POST", "/v1/channels/messenger/webhook"): frozenset({IN}),
    ("GET", "/v1/channels/instagram/webhook"): frozenset({IN}),
    ("POST", "/v1/channels/instagram/webhook"): frozenset({IN}),
    ("POST", "/v1/channels/chatwoot/webhook"): frozenset({IN}),
    ("POST", "/v1/channels/twilio/webhook"): frozenset({IN}),
    ("GET", "/v1/messages"): frozenset({IN, AG, AU}),
    ("GET", "/v1/messages/{message_id}"): frozenset({IN, AG, AU}),
    ("GET", "/v1/events"): frozenset({IN, AG, AU}),
    ("POST", "/v1/conversations/{conversation_id}/resolve"): frozenset({IN, AG}),
    ("POST", "/v1/surveys/{survey_id}/responses"): frozenset({IN, AG}),
    # agents work the queue
    ("POST", "/v1/messages/{message_id}/read"): frozenset({AG}),
    ("POST", "/v1/suggestions/{suggestion_id}/approve"): frozenset({AG}),
    ("POST", "/v1/suggestions/{suggestion_id}/send"): frozenset({AG}),
    ("POST", "/v1/suggestions/{suggestion_id}/reject"): frozenset({AG}),
    ("POST", "/v1/conversations/{conversation_id}/reply"): frozenset({AG}),
    ("POST", "/v1/conversations/{conversation_id}/assign"): frozenset({AG}),
    ("POST", "/v1/conversations/{conversation_id}/presence"): frozenset({AG}),
    # reading threads (customer data): agents and auditors
    ("GET", "/v1/queue"): frozenset({AG, AU}),
    ("GET", "/v1/suggestions"): frozenset({AG, AU}),
    ("GET", "/v1/suggestions/{suggestion_id}"): frozenset({AG, AU}),
    ("GET", "/v1/conversations/{conversation_id}"): frozenset({AG, AU}),
    # analysis: stateless, no stored customer data
    ("POST", "/v1/triage"): frozenset({AG, EV, AU}),
    ("POST", "/v1/drafts"): frozenset({AG, EV, AU}),
    ("POST", "/v1/tone/check"): frozenset({AG, EV, AU}),
    ("GET", "/v1/kb/search"): frozenset({AG, EV, AU, ED}),
    ("GET", "/v1/kb/articles/{article_id}"): frozenset({AG, EV, AU, ED}),
    # the knowledge base is edited by editors only
    ("PUT", "/v1/kb/articles/{article_id}"): frozenset({ED}),
    ("DELETE", "/v1/kb/articles/{article_id}"): frozenset({ED}),
    ("POST", "/v1/kb/reindex"): frozenset({ED}),
    # metrics
    ("GET", "/v1/metrics/kpis"): frozenset({AG, EV, AU}),
    ("GET", "/metrics"): frozenset({EV, AU}),
    # keys: admin only
    ("POST", "/v1/keys"): frozenset(),
    ("GET", "/v1/keys"): frozenset(),
    ("DELETE", "/v1/keys/{key_id}"): frozenset(),
}

# A query string that fails validation after the role check, so an allowed role does no real work (a reindex,
# an endless event stream).
PROBE_QUERY = {("POST", "/v1/kb/reindex"): "?force=maybe", ("GET", "/v1/events"): "?since=-1"}
_PARAM = re.compile(r"\{(\w+)\}")


def _probe_path(path: str) -> str:
    # integer ids: 0 is out of range (422); string ids: one that does not exist (404)
    return _PARAM.sub(lambda m: "nope-0" if m.group(1) in {"article_id", "key_id"} else "0", path)


def _schema_operations(app) -> set[tuple[str, str]]:
    spec = app.openapi()
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_every_route_has_a_row(app):
    operations = _schema_operations(app)
    assert operations - MATRIX.keys() == set(), "new routes need a row in MATRIX (and in the README)"
    assert MATRIX.keys() - operations == set(), "rows for routes that no longer exist"


def test_the_roles_in_the_table_are_the_roles_that_exist():
    used = {r for roles in MATRIX.values() if roles != PUBLIC for r in roles}
    assert used <= set(ROLES) - {Role.admin.value}


def _call(client, method: str, path: str):
    url = _probe_path(path) + PROBE_QUERY.get((method, path), "")
    if method in {"POST", "PUT"}:
        return client.request(method, url, json={})
    return client.request(method, url)


def _forbidden_for(response, role: str) -> bool:
    if response.status_code != 403:
        return False
    error = response.json()["error"]
    return error["code"] == "forbidden" and error.get("details", {}).get("role") == role


@pytest.mark.parametrize("method,path", sorted(MATRIX))
def test_each_role_gets_exactly_its_row(client_with_role, method, path):
    allowed = MATRIX[(method, path)]
    for role in ROLES:
        response = _call(client_with_role(role), method, path)
        assert response.status_code != 401, f"{role} {method} {path}: {response.text}"
        may = allowed == PUBLIC or role == Role.admin.value or role in allowed
        if may:
            assert not _forbidden_for(response, role), f"{role} should pass {method} {path}"
            # an unconfigured adapter's deliberate 503 is fine; a crash is not
            assert response.status_code != 500, f"{role} {method} {path}: {response.text}"
        else:
            assert _forbidden_for(response, role), (
                f"{role} should get 403 on {method} {path}: {response.text}"
            )


@pytest.mark.parametrize("method,path", sorted(MATRIX))
def test_without_a_key_only_public_routes_answer(anon_client, method, path):
    response = _call(anon_client, method, path)
    if MATRIX[(method, path)] == PUBLIC:
        assert response.status_code == 200
    else:
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"


def test_an_integration_key_cannot_change_the_help_articles(client_with_role):
    """The defect that started the table: the key pasted into Meta/Chatwoot callback URLs edited articles."""
    c = client_with_role(IN)
    article = "---\ntitle: x\nlocale: en\nintents: [order_status]\nsummary: x\n---\n\nx\n"
    put = c.put("/v1/kb/articles/phish", content=article, headers={"Content-Type": "text/markdown"})
    assert put.status_code == 403
    assert c.delete("/v1/kb/articles/track-your-order").status_code == 403
    assert c.post("/v1/kb/reindex").status_code == 403


# -- the agent console (pages, not in the OpenAPI schema): the same roles, as pages -----------------------

CONSOLE_MATRIX: dict[tuple[str, str], frozenset[str] | str] = {
    ("GET", "/"): PUBLIC,  # a redirect to the queue
    ("GET", "/console"): PUBLIC,
    ("GET", "/console/login"): PUBLIC,
    ("POST", "/console/login"): PUBLIC,  # checks the key it is given
    ("GET", "/console/embed/chatwoot"): PUBLIC,  # waits for Chatwoot's context, offers sign-in
    ("POST", "/console/logout"): frozenset({AG, AU, EV}),
    ("GET", "/console/queue"): frozenset({AG, AU}),
    ("GET", "/console/events"): frozenset({AG, AU}),
    ("GET", "/console/conversations/{conversation_id}"): frozenset({AG, AU}),
    ("GET", "/console/embed/chatwoot/open"): frozenset({AG, AU}),
    ("GET", "/console/embed/chatwoot/conversations/{conversation_id}"): frozenset({AG, AU}),
    ("POST", "/console/conversations/{conversation_id}/presence"): frozenset({AG}),
    ("POST", "/console/conversations/{conversation_id}/assign"): frozenset({AG}),
    ("POST", "/console/conversations/{conversation_id}/tone"): frozenset({AG}),
    ("POST", "/console/conversations/{conversation_id}/send"): frozenset({AG}),
    ("POST", "/console/conversations/{conversation_id}/resolve"): frozenset({AG}),
    ("POST", "/console/suggestions/{suggestion_id}/approve"): frozenset({AG}),
    ("POST", "/console/suggestions/{suggestion_id}/reject"): frozenset({AG}),
    ("GET", "/console/kpis"): frozenset({AG, AU, EV}),  # aggregates only
}
# Probes that fail validation after the role check (no endless stream, no real work).
CONSOLE_PROBE_QUERY = {
    ("GET", "/console/events"): "?conversation_id=0",
    ("GET", "/console/embed/chatwoot/open"): "?account_id=0&conversation_id=0",
    ("GET", "/console/kpis"): "?days=0",
    ("GET", "/console/queue"): "?urgency=soon",
}


def _console_operations() -> set[tuple[str, str]]:
    from fastapi.routing import APIRoute

    from service.console.router import router

    return {
        (method, route.path)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
        if method != "HEAD"
    }


def test_every_console_page_has_a_row():
    operations = _console_operations()
    assert operations - CONSOLE_MATRIX.keys() == set(), "new console routes need a row in CONSOLE_MATRIX"
    assert CONSOLE_MATRIX.keys() - operations == set(), "rows for console routes that no longer exist"


def _console_call(client, method: str, path: str):
    url = _probe_path(path) + CONSOLE_PROBE_QUERY.get((method, path), "")
    return client.request(method, url, follow_redirects=False)


@pytest.mark.parametrize("method,path", sorted(CONSOLE_MATRIX))
def test_each_role_gets_exactly_its_console_row(client_with_role, method, path):
    allowed = CONSOLE_MATRIX[(method, path)]
    for role in ROLES:
        response = _console_call(client_with_role(role), method, path)
        may = allowed == PUBLIC or role == Role.admin.value or role in allowed
        if may:
            assert response.status_code not in (401, 403, 500), f"{role} {method} {path}: {response.text}"
        else:
            assert response.status_code == 403, f"{role} should get 403 on {method} {path}"
            assert f"role {role!r} may not" in response.text.replace("&#39;", "'")


@pytest.mark.parametrize("method,path", sorted(CONSOLE_MATRIX))
def test_without_a_session_console_pages_lead_to_sign_in(anon_client, method, path):
    response = _console_call(anon_client, method, path)
    if CONSOLE_MATRIX[(method, path)] == PUBLIC:
        assert response.status_code in (200, 303, 307, 401, 422), response.text
        assert not response.headers.get("location", "").startswith("/console/login?next=")
    else:
        assert response.status_code == 303, response.text
        assert response.headers["location"].startswith("/console/login?next=")
