"""API keys: created and revoked from the CLI or by an admin, stored hashed, required everywhere but /health,
checked per role, rate limited per key."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from service.auth.keys import KeyStore
from service.auth.models import ApiKeyCreate, Role
from service.cli import app as cli_app
from service.clock import ManualClock
from service.db import Database
from service.db.models import ApiKey
from service.settings import get_settings


def test_health_needs_no_key(anon_client):
    assert anon_client.get("/health").status_code == 200


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/v1/queue"),
        ("post", "/v1/messages"),
        ("post", "/v1/triage"),
        ("get", "/metrics"),
        ("get", "/v1/keys"),
        ("post", "/v1/tone/check"),
        ("get", "/v1/suggestions"),
    ],
)
def test_every_other_route_answers_401_without_a_key(anon_client, method, path):
    r = getattr(anon_client, method)(path)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_an_unknown_key_is_401(anon_client):
    r = anon_client.get("/v1/queue", headers={"Authorization": "Bearer rdk_not-a-real-key"})
    assert r.status_code == 401
    assert "invalid" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "role,method,path,expected",
    [
        ("agent", "post", "/v1/messages", 403),
        ("integration", "post", "/v1/suggestions/1/approve", 403),
        ("integration", "get", "/v1/queue", 403),
        ("evaluator", "post", "/v1/conversations/1/reply", 403),
        ("agent", "get", "/metrics", 403),
        ("agent", "get", "/v1/metrics/kpis", 200),  # aggregates: the console KPI page
        ("agent", "get", "/v1/keys", 403),
        ("evaluator", "get", "/v1/metrics/kpis", 200),
        ("evaluator", "get", "/metrics", 200),
        ("agent", "get", "/v1/queue", 200),
        ("integration", "get", "/v1/messages", 200),
    ],
)
def test_roles_are_checked_per_route(client_with_role, role, method, path, expected):
    c = client_with_role(role)
    r = c.post(path, json={}) if method == "post" else c.get(path)
    assert r.status_code == expected, r.text
    if expected == 403:
        body = r.json()["error"]
        assert body["code"] == "forbidden" and body["details"]["role"] == role


def test_admin_creates_lists_and_revokes_keys_and_a_revoked_key_stops_working(client, anon_client):
    created = client.post("/v1/keys", json={"name": "helpdesk-prod", "role": "integration"})
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("rdk_") and created.json()["prefix"] == key[:12]
    auth = {"Authorization": f"Bearer {key}"}
    assert anon_client.get("/v1/messages", headers=auth).status_code == 200
    listed = client.get("/v1/keys").json()
    assert any(k["id"] == created.json()["id"] and "key" not in k for k in listed)

    assert client.delete(f"/v1/keys/{created.json()['id']}").json()["revoked_at"] is not None
    r = anon_client.get("/v1/messages", headers=auth)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_a_key_over_its_rate_limit_gets_429(client, anon_client):
    key = client.post("/v1/keys", json={"name": "burst", "role": "agent", "rate_limit": "3/minute"}).json()[
        "key"
    ]
    auth = {"Authorization": f"Bearer {key}"}
    assert [anon_client.get("/v1/queue", headers=auth).status_code for _ in range(3)] == [200, 200, 200]
    r = anon_client.get("/v1/queue", headers=auth)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert r.json()["error"]["details"]["retry_after_s"] >= 1
    assert int(r.headers["Retry-After"]) == r.json()["error"]["details"]["retry_after_s"]
    # Another key is not affected.
    assert client.get("/v1/queue").status_code == 200


def test_a_malformed_rate_limit_is_rejected(client):
    r = client.post("/v1/keys", json={"name": "x", "role": "agent", "rate_limit": "lots"})
    assert r.status_code == 422


def test_keys_are_stored_hashed_never_in_clear(db_url):
    db = Database(db_url)
    db.migrate()
    store = KeyStore(db, ManualClock())
    created = store.create(ApiKeyCreate(name="maria", role=Role.agent))
    with db.session() as s:
        row = s.scalars(select(ApiKey)).one()
        stored = [str(v) for v in (row.id, row.name, row.role, row.key_hash, row.prefix)]
    assert created.key not in stored
    assert row.key_hash == hashlib.sha256(created.key.encode()).hexdigest()
    assert store.authenticate(created.key).role is Role.agent
    assert store.authenticate(created.key + "x") is None
    db.dispose()


@pytest.fixture
def cli_env(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("REPLYDESK_DATABASE_URL", db_url)
    monkeypatch.setenv("REPLYDESK_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def test_cli_creates_a_key_printed_alone_on_the_last_line_lists_and_revokes_it(cli_env):
    runner = CliRunner()
    created = runner.invoke(cli_app, ["keys", "create", "--role", "agent", "--name", "bob"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("rdk_") and " " not in key

    db = Database(cli_env)
    store = KeyStore(db, ManualClock())
    principal = store.authenticate(key)
    assert principal is not None and principal.name == "bob" and principal.role is Role.agent

    listed = runner.invoke(cli_app, ["keys", "list"])
    assert principal.key_id in listed.output and "active" in listed.output
    revoked = runner.invoke(cli_app, ["keys", "revoke", principal.key_id])
    assert revoked.exit_code == 0, revoked.output
    assert KeyStore(db, ManualClock()).authenticate(key) is None
    assert "revoked" in runner.invoke(cli_app, ["keys", "list"]).output
    db.dispose()


def test_cli_refuses_an_unknown_role_and_an_unknown_key_id(cli_env):
    runner = CliRunner()
    assert runner.invoke(cli_app, ["keys", "create", "--role", "root", "--name", "x"]).exit_code != 0
    r = runner.invoke(cli_app, ["keys", "revoke", "key_nope"])
    assert r.exit_code == 1
