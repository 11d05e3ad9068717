"""POST /v1/messages: messages land in their thread, run through the pipeline once, and re-sending never
duplicates."""

from __future__ import annotations

from collections.abc import Sequence

from service.errors import IndexUnavailable
from service.pipeline.models import TriagePipelineRead
from service.triage.models import TriageRequest
from service.workflow.models import ContextFact
from tests.workflow_harness import real_pipeline, use_pipeline


def test_resending_the_same_idempotency_key_returns_the_first_result(wf):
    first = wf.ingest("Hi, I want to return the shoes from order 123456", key="idem-1")
    again = wf.post(
        "/v1/messages",
        role="integration",
        json={
            "channel": "whatsapp",
            "conversation_external_id": "conv-1",
            "customer": {"id": "cust-1"},
            "text": "Hi, I want to return the shoes from order 123456",
            "sent_at": wf.clock.now().isoformat(),
            "idempotency_key": "idem-1",
        },
    )
    assert again.status_code == 200
    body = again.json()
    assert body["duplicate"] is True
    assert body["message"]["id"] == first["message"]["id"]
    assert [s["id"] for s in body["suggestions"]] == [s["id"] for s in first["suggestions"]]
    detail = wf.get(f"/v1/conversations/{first['conversation']['id']}").json()
    assert len(detail["messages"]) == 1
    assert len(detail["suggestions"]) == len(first["suggestions"])


def test_the_same_channel_message_id_is_a_duplicate_even_without_a_key(wf):
    first = wf.ingest("Is the blue kettle in stock?", channel_message_id="wamid.ABC")
    again = wf.ingest("Is the blue kettle in stock?", channel_message_id="wamid.ABC")
    assert again["duplicate"] is True and again["message"]["id"] == first["message"]["id"]
    other_channel = wf.ingest(
        "Is the blue kettle in stock?", channel="messenger", channel_message_id="wamid.ABC"
    )
    assert other_channel["duplicate"] is False


def test_messages_of_one_thread_share_a_conversation_and_customer(wf):
    a = wf.ingest("Hello")
    b = wf.ingest("My order 778899 has not arrived", locale="es-MX")
    c = wf.ingest("Hello", conversation="conv-2", customer="cust-2")
    assert a["conversation"]["id"] == b["conversation"]["id"] != c["conversation"]["id"]
    assert b["conversation"]["customer"]["locale"] == "es-MX"
    assert b["conversation"]["intent"] == b["triage"]["intent"]["name"]
    detail = wf.get(f"/v1/conversations/{a['conversation']['id']}").json()
    assert [m["text"] for m in detail["messages"]] == ["Hello", "My order 778899 has not arrived"]


def test_bad_input_is_a_clear_422(wf):
    base = {
        "channel": "whatsapp",
        "conversation_external_id": "c",
        "customer": {"id": "x"},
        "sent_at": "2026-01-05T09:00:00Z",
    }
    cases = [
        {**base, "text": "   "},  # nothing to store
        {**base, "text": "hi", "sent_at": "2026-01-05T09:00:00"},  # no time zone
        {**base, "text": "hi", "channel": "carrier-pigeon"},
        {**base, "text": "x" * 4001},
        {**base, "text": "hi", "customer": {"id": "x", "country": "Mexico"}},
    ]
    for body in cases:
        r = wf.post("/v1/messages", role="integration", json=body)
        assert r.status_code == 422, body
        assert r.json()["error"]["code"] == "invalid_input"


def test_an_attachment_only_message_is_stored_without_suggestions(wf):
    r = wf.ingest("", attachments=[{"type": "image", "url": "https://cdn.example/p.jpg"}])
    assert r["pipeline"]["status"] == "skipped"
    assert r["suggestions"] == []
    assert r["message"]["attachments"][0]["type"] == "image"
    assert r["conversation"]["sla"] is not None  # the customer still waits for an answer


def test_a_pipeline_outage_keeps_the_message_and_resending_retries_it(wf, app):
    real = real_pipeline(app.state.container)
    calls = {"n": 0}

    class PipelineDownOnce:
        def run(self, request: TriageRequest, *, facts: Sequence[ContextFact] = ()) -> TriagePipelineRead:
            calls["n"] += 1
            if calls["n"] == 1:
                raise IndexUnavailable("index is rebuilding")
            return real.run(request)

    use_pipeline(wf.app, PipelineDownOnce())
    first = wf.ingest("Where is my order 445566?", key="k-outage")
    assert first["pipeline"] == {"status": "failed", "error": "index_unavailable: index is rebuilding"}
    assert first["suggestions"] == [] and first["message"]["id"]
    retried = wf.ingest("Where is my order 445566?", key="k-outage")
    assert retried["duplicate"] is True and retried["message"]["id"] == first["message"]["id"]
    assert retried["pipeline"]["status"] == "done" and retried["suggestions"]
