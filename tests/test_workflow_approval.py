"""Suggestion lifecycle: pending → approved | edited | rejected, then sent; only approved or edited text is
sent, and an edit with `block` tone findings needs an explicit override with a reason."""

from __future__ import annotations


def _pending(wf, text="Hi, I was charged but the payment failed, order 889900"):
    return wf.ingest(text)["suggestions"][0]


def test_approving_unchanged_records_the_decision_and_sends_the_draft(wf):
    sug = _pending(wf)
    body = wf.post(f"/v1/suggestions/{sug['id']}/approve").json()
    assert body["suggestion"]["decision"] == "approved"
    assert body["suggestion"]["edit_distance"] == 0
    assert body["suggestion"]["decided_at"] is not None
    assert body["message"]["text"] == sug["draft_text"]


def test_an_edit_with_a_blocking_tone_finding_needs_an_override_reason(wf):
    sug = _pending(wf)
    blocked = wf.post(f"/v1/suggestions/{sug['id']}/approve", json={"text": "Fixed it for you 🖕"})
    assert blocked.status_code == 409
    err = blocked.json()["error"]
    assert err["code"] == "tone_blocked"
    assert any(f["severity"] == "block" for f in err["details"]["findings"])
    assert wf.get(f"/v1/suggestions/{sug['id']}").json()["status"] == "pending"

    ok = wf.post(
        f"/v1/suggestions/{sug['id']}/approve",
        json={"text": "Fixed it for you 🖕", "override_reason": "quoting the customer's own message"},
    )
    assert ok.status_code == 200
    s = ok.json()["suggestion"]
    assert s["status"] == "sent" and s["decision"] == "edited"
    assert s["tone_override_reason"] == "quoting the customer's own message"
    assert ok.json()["tone"]["overridden"] is True


def test_rejecting_needs_a_reason_and_a_rejected_suggestion_cannot_be_sent(wf):
    sug = _pending(wf)
    assert wf.post(f"/v1/suggestions/{sug['id']}/reject", json={}).status_code == 422
    r = wf.post(f"/v1/suggestions/{sug['id']}/reject", json={"reason": "wrong order number"})
    assert r.json()["suggestion"]["status"] == "rejected"
    assert r.json()["suggestion"]["reject_reason"] == "wrong order number"
    assert r.json()["suggestion"]["decided_by"] == "t-agent"
    assert wf.post(f"/v1/suggestions/{sug['id']}/approve").status_code == 409
    assert wf.post(f"/v1/suggestions/{sug['id']}/send").status_code == 409
    assert wf.get("/v1/suggestions?status=rejected").json()[0]["id"] == sug["id"]


def test_a_pending_suggestion_cannot_be_sent_and_a_decision_is_taken_once(wf):
    sug = _pending(wf)
    r = wf.post(f"/v1/suggestions/{sug['id']}/send")
    assert r.status_code == 409 and r.json()["error"]["details"]["status"] == "pending"
    assert wf.post(f"/v1/suggestions/{sug['id']}/approve", json={"send": False}).status_code == 200
    assert wf.post(f"/v1/suggestions/{sug['id']}/approve").status_code == 409


def test_sending_is_idempotent(wf):
    sug = _pending(wf)
    approved = wf.post(f"/v1/suggestions/{sug['id']}/approve", json={"send": False}).json()
    assert approved["suggestion"]["status"] == "approved" and approved["message"] is None
    first = wf.post(f"/v1/suggestions/{sug['id']}/send").json()
    second = wf.post(f"/v1/suggestions/{sug['id']}/send").json()
    assert first["message"]["id"] == second["message"]["id"]
    outbound = wf.get(f"/v1/messages?direction=outbound&conversation_id={sug['conversation_id']}").json()
    assert len(outbound) == 1


def test_an_agents_own_reply_supersedes_pending_suggestions_and_answers_the_wait(wf):
    ingested = wf.ingest("I need to talk to a human please")
    conv = ingested["conversation"]["id"]
    r = wf.post(f"/v1/conversations/{conv}/reply", json={"text": "Hi Ana, Maria here. How can I help?"})
    assert r.status_code == 201
    assert r.json()["message"]["author"] == "t-agent" and r.json()["message"]["status"] == "queued"
    assert {s["status"] for s in wf.get(f"/v1/suggestions?conversation_id={conv}").json()} == {"superseded"}
    detail = wf.get(f"/v1/conversations/{conv}").json()
    assert detail["first_response_at"] is not None and detail["sla"] is None
    assert wf.post(f"/v1/conversations/{conv}/reply", json={"text": "  "}).status_code == 422
    assert wf.post("/v1/conversations/999999/reply", json={"text": "hi"}).status_code == 404


def test_unknown_suggestions_are_404(wf):
    assert wf.post("/v1/suggestions/424242/approve").status_code == 404
    assert wf.get("/v1/suggestions/424242").status_code == 404
