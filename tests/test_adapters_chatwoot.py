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
        queued = r.json()["queued"][0]
        conv = h.get(f"/v1/conversations/{queued['conversation_id']}").json()
        assert conv["external_id"] == "chatwoot:7:42"
        assert conv["channel"] == "whatsapp"
        assert conv["customer"]["country"] == "MX"
        assert h.run_pipelines() == 1
        suggestions = h.get("/v1/suggestions", params={"conversation_id": conv["id"]}).json()
        assert suggestions

        h.deliver()  # the workers post the note through Chatwoot's API, like any delivery
        notes = [q for q in chatwoot_api.requests if q[1] == NOTE_PATH]
        assert len(notes) == 1
        _, _, headers, raw = notes[0]
        assert headers["api_access_token"] == CW_TOKEN
        note = json.loads(raw)
        assert note["private"] is True and note["message_type"] == "outgoing"
        assert suggestions[0]["draft_text"] in note["content"]
        assert f"[suggestion {suggestions[0]['id']}]" in note["content"]

        # Chatwoot retries the same webhook: no second message, no second note.
        assert _post(h, payload("Where is my order 123456? It is late")).json()["duplicates"] == 1
        assert h.run_pipelines() == 0
        h.deliver()
        assert len([q for q in chatwoot_api.requests if q[1] == NOTE_PATH]) == 1


def test_private_notes_are_skipped_and_counted(wf):
    r = _post(wf, payload("internal remark", private=True)).json()
    assert r["ingested"] == 0 and r["skipped"] == 1 and r["skipped_types"]
    assert "replydesk_channel_events_skipped_total" in wf.get("/metrics", role="admin").text


def test_an_agent_reply_in_chatwoot_answers_the_wait_and_supersedes_the_suggestions(wf):
    """An agent who answers in Chatwoot itself (`message_type: outgoing`) has answered the customer: the SLA
    stops, the first response counts, the drafts nobody used are superseded."""
    first = _post(wf, payload("Where is my order 123456? It is late")).json()
    conversation_id = first["queued"][0]["conversation_id"]
    wf.run_pipelines()
    wf.clock.advance(minutes=3)
    r = _post(wf, payload("Hi Ana, I'm checking with the courier.", message_id=1002, message_type="outgoing"))
    assert r.json()["replies"] == 1
    conv = wf.get(f"/v1/conversations/{conversation_id}").json()
    assert conv["first_response_at"] is not None and conv["sla"] is None  # nobody is waiting any more
    pending = wf.get(
        "/v1/suggestions", params={"conversation_id": conversation_id, "status": "pending"}
    ).json()
    assert pending == []
    thread = wf.get("/v1/messages", params={"conversation_id": conversation_id}).json()
    assert [m["direction"] for m in thread] == ["inbound", "outbound"]
    assert thread[1]["status"] == "sent" and thread[1]["channel_message_id"] == "chatwoot:7:1002"
    # the same webhook again (Chatwoot retries): recorded once
    again = _post(
        wf, payload("Hi Ana, I'm checking with the courier.", message_id=1002, message_type="outgoing")
    )
    assert again.json()["replies"] == 0
    assert len(wf.get("/v1/messages", params={"conversation_id": conversation_id}).json()) == 2


def test_resolving_in_chatwoot_resolves_the_conversation(wf):
    first = _post(wf, payload("Where is my order 123456?")).json()
    conversation_id = first["queued"][0]["conversation_id"]
    event = {
        "event": "conversation_status_changed",
        "id": 42,
        "status": "resolved",
        "account": {"id": 7},
        "changed_attributes": [{"status": {"previous_value": "open", "current_value": "resolved"}}],
    }
    assert _post(wf, event).json()["status_changes"] == 1
    assert wf.get(f"/v1/conversations/{conversation_id}").json()["status"] == "resolved"


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
