"""KPIs over a window, overall and per intent, and the Prometheus endpoint, from a scripted day at the
desk."""

from __future__ import annotations

from datetime import timedelta

import pytest

INVOICE = "Can I get an invoice for my last order?"
FRAUD = "Someone used my card without permission, I did not make this purchase!!"
ORDER = "Where is my order 123456? It should have arrived"


def _day_at_the_desk(wf):
    t0 = wf.clock.now()
    a = wf.ingest(INVOICE, conversation="a")
    wf.clock.advance(minutes=1)
    b = wf.ingest(FRAUD, conversation="b")
    wf.clock.advance(minutes=1)
    c = wf.ingest(ORDER, conversation="c")
    wf.post(f"/v1/suggestions/{a['suggestions'][0]['id']}/approve")  # a: answered after 2 min, unchanged
    wf.clock.advance(minutes=1)
    edited = wf.post(
        f"/v1/suggestions/{c['suggestions'][0]['id']}/approve",
        json={"text": c["suggestions"][0]["draft_text"] + " Thanks!"},
    ).json()  # c: 1 min, edited
    wf.post(f"/v1/suggestions/{b['suggestions'][0]['id']}/reject", json={"reason": "needs the fraud team"})
    wf.clock.advance(minutes=3)
    wf.post(
        f"/v1/conversations/{b['conversation']['id']}/reply",
        json={"text": "I have blocked the card and opened a fraud case."},
    )  # b: 5 min, over its 2 min
    wf.clock.set(t0 + timedelta(minutes=10))
    wf.post(f"/v1/conversations/{a['conversation']['id']}/resolve")
    wf.ingest("5", conversation="a")
    wf.clock.set(t0 + timedelta(minutes=20))
    wf.post(f"/v1/conversations/{b['conversation']['id']}/resolve")
    wf.ingest("2 - took a while", conversation="b")
    return t0, a, b, c, edited["suggestion"]["edit_distance"]


def test_kpis_overall_and_per_intent(wf):
    t0, a, b, _c, distance = _day_at_the_desk(wf)
    window = {"from": (t0 - timedelta(hours=1)).isoformat(), "to": (t0 + timedelta(hours=1)).isoformat()}
    r = wf.get("/v1/metrics/kpis", role="evaluator", params=window)
    assert r.status_code == 200, r.text
    k = r.json()
    o = k["overall"]
    assert o["conversations"] == 3
    assert o["first_response"]["count"] == 3
    assert o["first_response"]["p50_s"] == pytest.approx(120)
    assert o["first_response"]["p90_s"] == pytest.approx(264)  # linear interpolation over 60, 120, 300 s
    assert o["resolution"]["count"] == 2 and o["resolution"]["p50_s"] == pytest.approx((600 + 1140) / 2)
    assert o["sla_cycles"] == 3 and o["sla_met_pct"] == pytest.approx(66.67)
    assert o["csat_responses"] == 2 and o["csat_mean"] == 3.5 and o["csat_pct"] == 50.0
    assert o["nps_responses"] == 0 and o["nps"] is None
    s = o["suggestions"]
    assert (s["decided"], s["approved"], s["edited"], s["rejected"]) == (3, 1, 1, 1)
    assert s["acceptance_rate"] == s["edit_rate"] == s["reject_rate"] == pytest.approx(0.3333)
    assert s["mean_edit_distance"] == distance == len(" Thanks!")

    invoice = k["per_intent"][a["triage"]["intent"]["name"]]
    assert invoice["conversations"] == 1 and invoice["csat_mean"] == 5 and invoice["sla_met_pct"] == 100
    fraud = k["per_intent"][b["triage"]["intent"]["name"]]
    assert fraud["sla_met_pct"] == 0 and fraud["suggestions"]["rejected"] == 1

    empty = wf.get(
        "/v1/metrics/kpis",
        role="evaluator",
        params={"from": (t0 + timedelta(days=1)).isoformat(), "to": (t0 + timedelta(days=2)).isoformat()},
    ).json()
    assert empty["overall"]["conversations"] == 0 and empty["overall"]["sla_met_pct"] is None


def test_a_window_that_ends_before_it_starts_is_422(wf):
    r = wf.get(
        "/v1/metrics/kpis",
        role="evaluator",
        params={"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    )
    assert r.status_code == 422


def test_prometheus_metrics_count_the_workflow(wf):
    _day_at_the_desk(wf)
    wf.ingest("Can I get an invoice for my last order?", conversation="d")
    text = wf.get("/metrics", role="evaluator").text
    assert 'replydesk_messages_ingested_total{channel="whatsapp"} 6.0' in text
    assert 'replydesk_suggestion_decisions_total{decision="edited"} 1.0' in text
    assert 'replydesk_queue_conversations{state="ok"}' in text
    assert 'replydesk_survey_answers_total{kind="csat",parsed="true"} 2.0' in text
    assert "replydesk_pipeline_seconds_count" in text
