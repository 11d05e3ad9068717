"""Message status: outbound receipts never move backwards and `read` never shows without a send before it;
inbound messages have an agent read state, announced once so the channel's read receipt is honest."""

from __future__ import annotations

from datetime import timedelta


def _outbound(wf):
    sug = wf.ingest("Where is my order 123987?")["suggestions"][0]
    return wf.post(f"/v1/suggestions/{sug['id']}/approve").json()["message"]


def _receipt(wf, mid, status, **kw):
    r = wf.post(f"/v1/messages/{mid}/status", role="integration", json={"status": status, **kw})
    assert r.status_code == 200, r.text
    return r.json()


def test_statuses_never_move_backwards(wf):
    out = _outbound(wf)
    assert _receipt(wf, out["id"], "sent")["applied"] is True
    assert _receipt(wf, out["id"], "read")["message"]["status"] == "read"
    back = _receipt(wf, out["id"], "delivered")
    assert back["applied"] is False and "backwards" in back["reason"]
    assert back["message"]["status"] == "read"
    again = _receipt(wf, out["id"], "read")
    assert again["applied"] is False
    late_failure = _receipt(wf, out["id"], "failed", error="timeout")
    assert late_failure["applied"] is False and late_failure["message"]["status"] == "read"


def test_read_on_a_queued_message_fills_in_when_it_was_sent(wf):
    out = _outbound(wf)
    assert out["status"] == "queued"
    at = (wf.clock.now() + timedelta(seconds=20)).isoformat()
    msg = _receipt(wf, out["id"], "read", at=at, channel_message_id="wamid.R1")["message"]
    assert msg["status"] == "read"
    assert msg["sent_at"] is not None and msg["delivered_at"] is not None
    assert msg["sent_at"] <= msg["delivered_at"] <= msg["read_at"]
    assert msg["channel_message_id"] == "wamid.R1"


def test_a_receipt_time_before_the_message_existed_is_clamped(wf):
    out = _outbound(wf)
    msg = _receipt(wf, out["id"], "delivered", at="2020-01-01T00:00:00Z")["message"]
    assert msg["sent_at"] >= out["created_at"] and msg["delivered_at"] >= msg["sent_at"]


def test_a_failed_message_stays_failed(wf):
    out = _outbound(wf)
    failed = _receipt(wf, out["id"], "failed", error="number not on WhatsApp")["message"]
    assert failed["status"] == "failed" and failed["error"] == "number not on WhatsApp"
    assert _receipt(wf, out["id"], "delivered")["applied"] is False


def test_receipts_are_for_outbound_messages_only(wf):
    inbound = wf.ingest("hello")["message"]
    r = wf.post(f"/v1/messages/{inbound['id']}/status", role="integration", json={"status": "read"})
    assert r.status_code == 409
    assert (
        wf.post("/v1/messages/987654/status", role="integration", json={"status": "read"}).status_code == 404
    )
    assert (
        wf.post(
            f"/v1/messages/{inbound['id']}/status", role="integration", json={"status": "seen"}
        ).status_code
        == 422
    )


def test_an_agent_reading_a_message_marks_earlier_ones_and_announces_it_once(wf):
    a = wf.ingest("hello", channel_message_id="wamid.in1")["message"]
    b = wf.ingest("my order 555444 is late", channel_message_id="wamid.in2")["message"]
    assert a["agent_read_at"] is None
    queue_item = wf.get("/v1/queue").json()["items"][0]
    assert queue_item["unread_messages"] == 2

    read = wf.post(f"/v1/messages/{b['id']}/read")
    assert read.status_code == 200 and read.json()["agent_read_at"] is not None
    assert wf.get(f"/v1/messages/{a['id']}").json()["agent_read_at"] is not None
    assert wf.get("/v1/queue").json()["items"][0]["unread_messages"] == 0
    wf.post(f"/v1/messages/{b['id']}/read")

    events = [e for e in wf.container.workflow.events.since(0) if e.type == "message.read"]
    assert len(events) == 1
    assert events[0].data["channel_message_ids"] == ["wamid.in1", "wamid.in2"]
    out = _outbound(wf)
    assert wf.post(f"/v1/messages/{out['id']}/read").status_code == 409
