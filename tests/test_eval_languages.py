"""`replydesk eval languages`: per-language intent accuracy through the service's own triage, with the
configured embedding routes and without them."""

from __future__ import annotations

import json

import pytest

from eval.languages import lines, load_rows, per_language

ROWS = [
    ("I forgot my password and cannot log in", "account_access", "en"),
    ("where is my parcel, it should have arrived on monday", "delivery_delay", "en"),
    ("Olvidé mi contraseña y no puedo entrar a mi cuenta", "account_access", "es"),
    ("Je veux annuler ma commande", "account_access", "fr"),  # labelled wrong on purpose: a miss
]


def test_each_language_is_scored_on_its_own_rows_and_english_is_served_by_its_route(app):
    report = per_language(app.state.container.triage, ROWS)
    assert report["n"] == 4
    per = report["per_language"]
    assert per["en"] == {"n": 2, "accuracy": 1.0, "language_detected": 1.0, "routed": 2}
    assert per["es"] == {"n": 1, "accuracy": 1.0, "language_detected": 1.0, "routed": 0}
    assert per["fr"]["accuracy"] == 0.0
    assert report["macro"] == pytest.approx((1.0 + 1.0 + 0.0) / 3, abs=1e-4)


def test_the_report_prints_both_columns_per_language():
    row = {"n": 1, "accuracy": 1.0, "language_detected": 1.0, "routed": 1}
    report = {
        "data": "x.jsonl",
        "routes": {"en": "m"},
        "configured": {"n": 1, "macro": 1.0, "per_language": {"en": row}},
        "no_routes": {"n": 1, "macro": 0.5, "per_language": {"en": {**row, "accuracy": 0.5}}},
    }
    printed = lines(report)
    assert printed[2].split()[:4] == ["en", "1", "100.0%", "50.0%"]
    assert printed[-1].split() == ["macro", "100.0%", "50.0%"]


def test_rows_without_a_language_are_refused_with_their_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"text": "hi", "intent": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"rows.jsonl:1: missing field 'language'"):
        load_rows(path)
