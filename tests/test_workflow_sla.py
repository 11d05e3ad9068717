"""SLA: targets per urgency (optionally in business hours), queue order by risk then urgency, and at-risk /
breach events emitted exactly once each, over webhook and SSE. Time only moves when the test moves the
clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from service.errors import InvalidInput
from service.triage.models import UrgencyLevel
from service.workflow.models import SlaKind, SlaState
from service.workflow.sla import BusinessHours, SlaPolicy
from tests.workflow_harness import harness

DEFAULTS = {"critical": 2, "high": 5, "normal": 10, "low": 60}
FLAT = {"critical": 10, "high": 10, "normal": 10, "low": 10}
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday


def test_default_targets_and_the_at_risk_point():
    policy = SlaPolicy(DEFAULTS, DEFAULTS, 0.8)
    at_risk, due = policy.schedule(SlaKind.first_response, UrgencyLevel.normal, T0)
    assert (at_risk - T0).total_seconds() == 8 * 60 and (due - T0).total_seconds() == 10 * 60
    assert [
        (policy.schedule(SlaKind.next_response, u, T0)[1] - T0).total_seconds() / 60 for u in UrgencyLevel
    ] == [60, 10, 5, 2]
    assert SlaPolicy.state(at_risk, due, T0.replace(minute=7)) is SlaState.ok
    assert SlaPolicy.state(at_risk, due, T0.replace(minute=8)) is SlaState.at_risk
    assert SlaPolicy.state(at_risk, due, T0.replace(minute=10)) is SlaState.breached


def test_business_hours_pause_the_clock_overnight_and_on_weekends():
    hours = BusinessHours.parse("mon-fri 09:00-18:00; sat 10:00-12:00", "Europe/Madrid")
    policy = SlaPolicy(DEFAULTS, DEFAULTS, 0.8, hours)
    friday_late = datetime(2026, 1, 9, 16, 55, tzinfo=UTC)  # 17:55 in Madrid
    at_risk, due = policy.schedule(SlaKind.first_response, UrgencyLevel.normal, friday_late)
    assert at_risk == datetime(2026, 1, 10, 9, 3, tzinfo=UTC)  # Saturday 10:03 Madrid
    assert due == datetime(2026, 1, 10, 9, 5, tzinfo=UTC)
    sunday = datetime(2026, 1, 11, 12, 0, tzinfo=UTC)
    assert hours.open_minutes(friday_late, sunday) == pytest.approx(5 + 120)
    assert policy.elapsed_ratio(SlaKind.first_response, UrgencyLevel.normal, friday_late, sunday) > 1


@pytest.mark.parametrize("spec", ["mon-fri", "mon-fri 18:00-09:00", "someday 09:00-10:00", "mon-fri 9h-17h"])
def test_malformed_business_hours_are_refused(spec):
    with pytest.raises(InvalidInput):
        BusinessHours.parse(spec)


def test_missing_targets_are_refused():
    with pytest.raises(InvalidInput):
        SlaPolicy({"normal": 10}, DEFAULTS, 0.8)


@pytest.fixture
def flat(db_url, tmp_path, app):
    with harness(
        db_url, tmp_path, app.state.container, sla_first_response_minutes=FLAT, sla_next_response_minutes=FLAT
    ) as h:
        yield h


def test_queue_states_follow_the_clock_and_order_by_risk_then_urgency(flat):
    a = flat.ingest("Can I get an invoice for my last order?", conversation="a")["conversation"]["id"]
    flat.clock.advance(minutes=3)
    b = flat.ingest("Can I get an invoice for my last order?", conversation="b")["conversation"]["id"]
    c = flat.ingest(
        "Someone used my card without permission, I did not make this purchase!!", conversation="c"
    )["conversation"]["id"]
    flat.clock.advance(minutes=4)  # a: 7 min, b and c: 4 min
    q = flat.get("/v1/queue").json()
    assert q["counts"] == {"ok": 3, "at_risk": 0, "breached": 0}
    assert [i["conversation_id"] for i in q["items"]] == [c, a, b]  # critical first, then the earlier due

    flat.clock.advance(minutes=1)  # a: 8 min → at risk
    q = flat.get("/v1/queue").json()
    assert [(i["conversation_id"], i["state"]) for i in q["items"]] == [(a, "at_risk"), (c, "ok"), (b, "ok")]
    assert q["items"][0]["elapsed_ratio"] == pytest.approx(0.8)

    flat.clock.advance(minutes=3)  # a: 11 → breached; b, c: 8 → at risk
    q = flat.get("/v1/queue").json()
    assert [(i["conversation_id"], i["state"]) for i in q["items"]] == [
        (a, "breached"),
        (c, "at_risk"),
        (b, "at_risk"),
    ]
    assert [i["conversation_id"] for i in flat.get("/v1/queue?state=at_risk").json()["items"]] == [c, b]


def test_at_risk_and_breach_are_emitted_once_each_over_webhook_and_sse(flat):
    conv = flat.ingest("Can I get an invoice for my last order?")["conversation"]["id"]
    wf = flat.container.workflow
    assert wf.scan_sla() == 0
    flat.clock.advance(minutes=8)
    assert wf.scan_sla() == 1
    assert wf.scan_sla() == 0
    flat.get("/v1/queue")  # reading the queue announces nothing (tests/test_workflow_recovery.py)
    flat.clock.advance(minutes=2)
    assert wf.scan_sla() == 1
    flat.clock.advance(minutes=30)
    assert wf.scan_sla() == 0

    flat.deliver()
    # deliveries run concurrently and may arrive in either order; the event ids keep the order of events
    sla_events = sorted(
        (r.body["id"], r.body["type"]) for r in flat.receiver.received if r.body["type"].startswith("sla.")
    )
    assert [t for _, t in sla_events] == ["sla.at_risk", "sla.breached"]
    assert all(r.body["conversation_id"] == conv for r in flat.receiver.of_type("sla.breached"))

    with flat.client.stream(
        "GET",
        "/v1/events?since=0&types=sla.at_risk,sla.breached&max_wait_s=0.2",
        headers=flat.headers("agent"),
    ) as stream:
        assert stream.status_code == 200
        text = "".join(stream.iter_text())
    events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    assert [e["type"] for e in events] == ["sla.at_risk", "sla.breached"]
    assert "event: sla.breached" in text and f"id: {events[1]['id']}" in text


def test_a_wait_that_jumps_straight_past_due_announces_only_the_breach(flat):
    flat.ingest("Can I get an invoice for my last order?")
    flat.clock.advance(minutes=15)
    assert flat.container.workflow.scan_sla() == 1
    types = [e.type for e in flat.container.workflow.events.since(0) if e.type.startswith("sla.")]
    assert types == ["sla.breached"]


def test_an_answer_stops_the_clock_and_the_next_message_starts_a_next_response_wait(flat):
    ingested = flat.ingest("Can I get an invoice for my last order?")
    conv = ingested["conversation"]["id"]
    flat.clock.advance(minutes=5)
    flat.post(f"/v1/suggestions/{ingested['suggestions'][0]['id']}/approve")
    flat.clock.advance(minutes=30)
    assert flat.container.workflow.scan_sla() == 0
    assert flat.get("/v1/queue").json()["items"][0]["state"] == "ok"
    again = flat.ingest("Thanks, and can you also send it by email?")
    assert again["conversation"]["sla"]["kind"] == "next_response"
    assert flat.get(f"/v1/conversations/{conv}").json()["sla"]["state"] == "ok"


def test_a_more_urgent_follow_up_tightens_the_wait(wf):
    first = wf.ingest("Can I get an invoice for my last order?")
    assert first["conversation"]["urgency"] == "low"
    due_low = first["conversation"]["sla"]["due_at"]
    second = wf.ingest("Someone used my card without permission, I did not make this purchase!!")
    assert second["conversation"]["urgency"] == "critical"
    sla = second["conversation"]["sla"]
    assert sla["due_at"] < due_low and sla["started_at"] == first["conversation"]["sla"]["started_at"]


def test_sse_resumes_after_last_event_id(wf):
    wf.ingest("hello")
    all_events = wf.container.workflow.events.since(0)
    first_id = all_events[0].id
    with wf.client.stream(
        "GET",
        "/v1/events?max_wait_s=0.2",
        headers={**wf.headers("integration"), "Last-Event-ID": str(first_id)},
    ) as stream:
        ids = [int(line[3:].strip()) for line in stream.iter_lines() if line.startswith("id:")]
    assert ids == [e.id for e in all_events[1:]]
    with wf.client.stream("GET", "/v1/events?since=0&max_events=1", headers=wf.headers("agent")) as stream:
        assert sum(1 for line in stream.iter_lines() if line.startswith("data:")) == 1
