"""End to end through the real app, on SQLite and PostgreSQL: a customer message becomes suggestions, an agent
edits and approves one, it is sent to the helpdesk through a signed webhook, and the channel's receipts come
back."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.auth.models import ApiKeyCreate
from tests.workflow_harness import harness

pytestmark = pytest.mark.slow  # the whole flow with the background worker and a live webhook receiver


@pytest.fixture
def h(db_url, tmp_path, app):
    with harness(db_url, tmp_path, app.state.container) as h:
        yield h


def test_ingest_edit_approve_send_webhook_delivered_read(h):
    ingested = h.ingest("Hi, where is my order #A12345? It was due yesterday.", key="wamid.in-1")
    assert ingested["duplicate"] is False
    assert ingested["pipeline"]["status"] == "done"
    assert ingested["triage"]["intent"]["name"]
    suggestions = ingested["suggestions"]
    assert suggestions and all(s["status"] == "pending" for s in suggestions)
    conv_id = ingested["conversation"]["id"]
    assert ingested["conversation"]["sla"]["state"] == "ok"

    # The agent sees it in the queue, then edits and approves the best draft.
    queue = h.get("/v1/queue").json()
    assert [i["conversation_id"] for i in queue["items"]] == [conv_id]
    assert queue["items"][0]["pending_suggestions"] == len(suggestions)
    best = suggestions[0]
    edited = best["draft_text"] + " We are sorry for the wait."
    h.clock.advance(minutes=2)
    decision = h.post(f"/v1/suggestions/{best['id']}/approve", json={"text": edited})
    assert decision.status_code == 200, decision.text
    body = decision.json()
    assert body["suggestion"]["status"] == "sent"
    assert body["suggestion"]["decision"] == "edited"
    assert body["suggestion"]["final_text"] == edited
    assert body["suggestion"]["edit_distance"] == len(" We are sorry for the wait.")
    assert body["suggestion"]["decided_by"] == "t-agent"
    assert body["tone"]["ok"] is True
    out = body["message"]
    assert out["status"] == "queued" and out["direction"] == "outbound" and out["text"] == edited

    # Sibling drafts are superseded; the wait is answered.
    others = h.get(f"/v1/suggestions?conversation_id={conv_id}").json()
    assert {s["status"] for s in others if s["id"] != best["id"]} <= {"superseded"}
    assert h.get(f"/v1/conversations/{conv_id}").json()["sla"] is None

    # The dispatcher delivers the signed webhook; the receiver verified the signature.
    assert h.deliver() >= 1
    outbound = h.receiver.of_type("message.outbound")
    assert len(outbound) == 1 and not h.receiver.rejected
    assert outbound[0].body["data"]["message"]["text"] == edited
    assert outbound[0].body["data"]["conversation"]["external_id"] == "conv-1"
    sent = h.get(f"/v1/messages/{out['id']}").json()
    assert sent["status"] == "sent"
    assert sent["channel_message_id"] == f"wamid.test{out['id']}"

    # Channel receipts: delivered, then read.
    h.clock.advance(seconds=5)
    r = h.post(f"/v1/messages/{out['id']}/status", role="integration", json={"status": "delivered"})
    assert r.json()["applied"] is True and r.json()["message"]["status"] == "delivered"
    h.clock.advance(seconds=30)
    r = h.post(f"/v1/messages/{out['id']}/status", role="integration", json={"status": "read"})
    final = r.json()["message"]
    assert final["status"] == "read"
    assert final["sent_at"] <= final["delivered_at"] <= final["read_at"]


def test_webhook_is_retried_with_backoff_until_the_helpdesk_accepts_it(h):
    h.receiver.fail_next, h.receiver.fail_type = 2, "message.outbound"
    ingested = h.ingest("Can I change the delivery address of order 123456?")
    sug = ingested["suggestions"][0]
    out = h.post(f"/v1/suggestions/{sug['id']}/approve", json={}).json()["message"]
    events_before = len(h.receiver.received)

    assert h.deliver() >= 1  # first attempt: 500
    assert h.get(f"/v1/messages/{out['id']}").json()["status"] == "queued"
    assert h.deliver() == 0  # backing off: nothing due yet
    assert h.receiver.of_type("message.outbound") == []
    h.clock.advance(seconds=2)
    h.deliver()  # second attempt: 500
    h.clock.advance(seconds=5)
    h.deliver()  # third attempt: accepted
    assert h.get(f"/v1/messages/{out['id']}").json()["status"] == "sent"
    outbound = h.receiver.of_type("message.outbound")
    assert len(outbound) == 1  # delivered exactly once to the handler
    assert h.receiver.attempts >= 3
    assert len(h.receiver.received) > events_before


def test_outbound_message_fails_after_the_last_attempt(db_url, tmp_path, app):
    with harness(db_url, tmp_path, app.state.container, webhook_max_attempts=2) as h:
        h.receiver.fail_next, h.receiver.fail_type = 100, "message.outbound"
        sug = h.ingest("Where is my parcel?")["suggestions"][0]
        out = h.post(f"/v1/suggestions/{sug['id']}/approve", json={}).json()["message"]
        for _ in range(3):
            h.deliver()
            h.clock.advance(minutes=5)
        msg = h.get(f"/v1/messages/{out['id']}").json()
        assert msg["status"] == "failed"
        assert "webhook delivery failed" in msg["error"]


def test_the_background_worker_delivers_without_being_asked(db_url, tmp_path, app):
    with harness(db_url, tmp_path, app.state.container, workers_enabled=True, worker_interval_s=0.05) as h:
        sug = h.ingest("Do you sell phone chargers?")["suggestions"][0]
        out = h.post(f"/v1/suggestions/{sug['id']}/approve").json()["message"]
        deadline = time.monotonic() + 20
        while h.get(f"/v1/messages/{out['id']}").json()["status"] != "sent" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert h.get(f"/v1/messages/{out['id']}").json()["status"] == "sent"
        assert len(h.receiver.of_type("message.outbound")) == 1


def test_two_agents_approving_the_same_suggestion_send_it_once(wf):
    """Four agents, each with their own key, approve at once: one wins, the others get 409. (The same key
    repeating its approval after it was recorded gets that result again: a retry, not a second send.)"""
    sug = wf.ingest("Where is my order 112233?")["suggestions"][0]
    agents = [
        wf.container.keys.create(ApiKeyCreate(name=f"agent-{n}", role="agent", rate_limit="1000/minute")).key
        for n in range(4)
    ]

    def approve(key: str) -> int:
        headers = {"Authorization": f"Bearer {key}"}
        return wf.client.post(f"/v1/suggestions/{sug['id']}/approve", headers=headers).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(approve, agents))
    assert sorted(codes) == [200, 409, 409, 409]
    outbound = wf.get(f"/v1/messages?direction=outbound&conversation_id={sug['conversation_id']}").json()
    assert len(outbound) == 1
