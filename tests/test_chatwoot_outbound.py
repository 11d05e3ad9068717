"""Replies in Chatwoot conversations are posted into Chatwoot as outgoing messages (the console's Chatwoot
panel approves; the customer gets the reply through Chatwoot), against a local stand-in of Chatwoot's API
that checks each request's shape: `POST /api/v1/accounts/{account}/conversations/{id}/messages`,
`api_access_token`, `{"content", "message_type": "outgoing", "private": false}`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.workflow_harness import Harness, StubServer, harness

TOKEN = "cw-token-3a7"
PATH = "/api/v1/accounts/7/conversations/42/messages"


@pytest.fixture
def chatwoot() -> Iterator[StubServer]:
    stub = StubServer(
        routes={("POST", PATH): (200, {"id": 9001, "content": "ok", "message_type": 1, "private": False})}
    ).start()
    yield stub
    stub.stop()


@pytest.fixture
def cw(db_url, tmp_path, app, chatwoot) -> Iterator[Harness]:
    with harness(
        db_url,
        tmp_path,
        app.state.container,
        chatwoot_base_url=chatwoot.base_url,
        chatwoot_api_token=TOKEN,
        webhook_max_attempts=3,
    ) as h:
        yield h


def _posts(stub: StubServer) -> list[dict]:
    """The replies posted to the conversation (not the private notes with the suggestions)."""
    posted = [json.loads(raw) for method, path, _, raw in stub.requests if method == "POST" and path == PATH]
    return [p for p in posted if p.get("private") is False]


def test_an_approved_edit_is_posted_once_as_an_outgoing_message_and_the_message_is_sent(cw, chatwoot):
    sug = cw.ingest("Where is my order 4471?", conversation="chatwoot:7:42")["suggestions"][0]
    edited = sug["draft_text"] + " Thanks!"
    decision = cw.post(f"/v1/suggestions/{sug['id']}/approve", json={"text": edited}).json()
    cw.deliver()
    cw.deliver()  # delivered: never posted twice
    assert _posts(chatwoot) == [{"content": edited, "message_type": "outgoing", "private": False}]
    headers = chatwoot.requests[0][2]
    assert headers.get("api_access_token") == TOKEN
    msg = cw.get(f"/v1/messages/{decision['message']['id']}").json()
    assert msg["status"] == "sent" and msg["channel_message_id"] == "chatwoot:7:9001"
    # the generic outbound webhook is not used for it (the helpdesk already has the message)
    assert cw.receiver is not None and cw.receiver.of_type("message.outbound") == []


def test_a_chatwoot_error_is_retried_and_then_delivered_once(cw, chatwoot):
    chatwoot.routes[("POST", PATH)] = (500, {"error": "boom"})
    sug = cw.ingest("Where is my order 4471?", conversation="chatwoot:7:42")["suggestions"][0]
    cw.post(f"/v1/suggestions/{sug['id']}/approve")
    cw.deliver()
    chatwoot.routes[("POST", PATH)] = (200, {"id": 9002})
    cw.clock.advance(seconds=30)
    cw.deliver()
    cw.clock.advance(seconds=30)
    cw.deliver()
    assert len(_posts(chatwoot)) == 2
    out = cw.get("/v1/messages", params={"direction": "outbound"}).json()
    assert [m["status"] for m in out] == ["sent"] and out[0]["channel_message_id"] == "chatwoot:7:9002"


def test_a_token_chatwoot_refuses_ends_failed_with_the_reason(cw, chatwoot):
    chatwoot.routes[("POST", PATH)] = (401, {"error": "Invalid Access Token"})
    sug = cw.ingest("Where is my order 4471?", conversation="chatwoot:7:42")["suggestions"][0]
    cw.post(f"/v1/suggestions/{sug['id']}/approve")
    for _ in range(3):
        cw.deliver()
        cw.clock.advance(minutes=10)
    out = cw.get("/v1/messages", params={"direction": "outbound"}).json()[0]
    assert out["status"] == "failed" and "401" in (out["error"] or "")


def test_other_conversations_keep_the_outbound_webhook(cw, chatwoot):
    sug = cw.ingest("Where is my order 4471?", conversation="wa:5215512345678")["suggestions"][0]
    cw.post(f"/v1/suggestions/{sug['id']}/approve")
    cw.deliver()
    assert _posts(chatwoot) == []
    assert cw.receiver is not None and len(cw.receiver.of_type("message.outbound")) == 1


def test_without_chatwoot_configured_chatwoot_conversations_use_the_webhook(wf):
    sug = wf.ingest("Where is my order 4471?", conversation="chatwoot:7:42")["suggestions"][0]
    wf.post(f"/v1/suggestions/{sug['id']}/approve")
    wf.deliver()
    assert wf.receiver is not None and len(wf.receiver.of_type("message.outbound")) == 1


def test_chatwoots_webhook_for_the_posted_reply_is_neither_a_customer_message_nor_a_second_reply(
    cw, chatwoot
):
    """Chatwoot announces the reply ReplyDesk posted (`message_created`, outgoing, same id): it is our own
    message, so nothing new is stored."""
    sug = cw.ingest("Where is my order 4471?", conversation="chatwoot:7:42")["suggestions"][0]
    cw.post(f"/v1/suggestions/{sug['id']}/approve")
    cw.deliver()
    echo = {
        "event": "message_created",
        "id": 9001,
        "message_type": "outgoing",
        "content": sug["draft_text"],
        "private": False,
        "created_at": cw.clock.now().isoformat(),
        "conversation": {"id": 42, "channel": "Channel::Whatsapp"},
        "account": {"id": 7},
        "sender": {"id": 1, "name": "ReplyDesk bot", "type": "agent_bot"},
    }
    r = cw.client.post(
        "/v1/channels/chatwoot/webhook", json=echo, params={"api_key": cw.keys["integration"]}
    ).json()
    assert r["ingested"] == 0 and r["replies"] == 0
    thread = cw.get("/v1/messages", params={"direction": "outbound"}).json()
    assert len(thread) == 1 and thread[0]["channel_message_id"] == "chatwoot:7:9001"
