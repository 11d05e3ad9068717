"""Chatwoot `message_created` webhooks: customer messages are ingested, suggestions go back to the
conversation as one private note through Chatwoot's API, and signed webhooks are verified when a secret is
set."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from tests.workflow_harness import StubServer, harness

CW_TOKEN = "cw-agent-bot-token"
NOTE_PATH = "/api/v1/accounts/7/conversations/42/messages"


def payload(
    content: str, *, message_id: int = 1001, message_type: str = "incoming", private: bool = False
) -> dict:
    return {
        "event": "message_created",
        "id": message_id,
        "content": content,
        "message_type": message_type,
        "private": private,
        "created_at": "2026-01-05T09:00:00.000Z",
        "conversation": {
            "id": 42,
            "channel": "Channel::Whatsapp",
            "additional_attributes": {"browser_language": "en"},
        },
        "sender": {
            "id": 55,
            "name": "Ana",
            "type": "contact",
            "additional_attributes": {"country_code": "MX"},
        },
        "account": {"id": 7},
        "inbox": {"id": 3, "name": "WhatsApp"},
        "attachments": [],
    }


@pytest.fixture
def chatwoot_api():
    stub = StubServer({("POST", NOTE_PATH): (200, {"id": 9001})}).start()
    yield stub
    stub.stop()


def _post(h, data: dict, headers: dict | None = None):
    return h.client.post(
        "/v1/channels/chatwoot/webhook",
        content=json.dumps(data).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        params={"api_key": h.keys["integration"]},
    )


def test_an_incoming_message_is_ingested_and_suggestions_are_posted_as_a_private_note(
    db_url, tmp_path, app, chatwoot_api
):
    with harness(
        db_url,
        tmp_path,
        app.state.container,
        chatwoot_base_url=chatwoot_api.base_url,
        chatwoot_api_token=CW_TOKEN,
    ) as h:
        r = _post(h, payload("Where is my order 123456? It is late"))
        assert r.status_code == 200, r.text
        result = r.json()["results"][0]
        assert result["conversation"]["external_id"] == "chatwoot:7:42"
        assert result["conversation"]["channel"] == "whatsapp"
        assert result["conversation"]["customer"]["country"] == "MX"
        assert result["suggestions"]

        notes = [q for q in chatwoot_api.requests if q[1] == NOTE_PATH]
        assert len(notes) == 1
        _, _, headers, raw = notes[0]
        assert headers["api_access_token"] == CW_TOKEN
        note = json.loads(raw)
        assert note["private"] is True and note["message_type"] == "outgoing"
        assert result["suggestions"][0]["draft_text"] in note["content"]
        assert f"[suggestion {result['suggestions'][0]['id']}]" in note["content"]

        # Chatwoot retries the same webhook: no second message, no second note.
        assert _post(h, payload("Where is my order 123456? It is late")).json()["duplicates"] == 1
        assert len([q for q in chatwoot_api.requests if q[1] == NOTE_PATH]) == 1


@pytest.mark.parametrize("kwargs", [{"message_type": "outgoing"}, {"private": True}])
def test_agent_messages_and_private_notes_are_skipped(wf, kwargs):
    r = _post(wf, payload("internal remark", **kwargs))
    assert r.json() == {
        "ingested": 0,
        "duplicates": 0,
        "receipts": 0,
        "unknown_receipts": 0,
        "skipped": 1,
        "results": [],
    }


def _signed(body: bytes, secret: str, ts: int) -> dict:
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Chatwoot-Signature": f"sha256={mac}", "X-Chatwoot-Timestamp": str(ts)}


def test_signed_chatwoot_webhooks_are_verified_when_a_secret_is_set(db_url, tmp_path, app):
    with harness(db_url, tmp_path, app.state.container, chatwoot_webhook_secret="cw-secret") as h:
        data = payload("Hello, is the store open on Sunday?")
        body = json.dumps(data).encode()
        now = int(h.clock.now().timestamp())
        assert _post(h, data, _signed(body, "cw-secret", now)).status_code == 200
        assert _post(h, data, _signed(body, "wrong", now)).status_code == 401
        assert _post(h, data, _signed(body, "cw-secret", now - 3600)).status_code == 401  # replayed
        assert _post(h, data).status_code == 401
