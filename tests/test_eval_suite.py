"""The evaluation suite's own logic: suite files, the baseline gate, groundedness, the peers and the HTML
report."""

from __future__ import annotations

import json
import re
import zlib

import numpy as np
import pytest

from eval import drafts as drafts_eval
from eval.peers import TfidfSvmIntentPeer
from eval.report import render_html
from eval.run import (
    compare,
    execute,
    flatten,
    load_suite,
    lower_is_better,
    oos_false_alarm_rate,
    reliability,
    tolerance_for,
)
from service.errors import InvalidInput
from service.settings import REPO_ROOT

DEFAULT_SUITE = REPO_ROOT / "eval" / "suites" / "default.yaml"
TOLERANCES = {"*/peer:*": None, "*latency*": None, "*/ece": 0.03, "*": 0.02}


def test_the_default_suite_names_every_part_kind_and_parses():
    suite = load_suite(DEFAULT_SUITE)
    assert {p.kind for p in suite.parts} == {"intents", "urgency", "retrieval", "tone", "drafts", "pii"}
    assert any(p.kind == "intents" and p.optional and "clinc150" in p.data for p in suite.parts)


def test_a_suite_with_an_unknown_part_kind_is_rejected_with_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nparts:\n  - kind: vibes\n    name: a\n    data: x.jsonl\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="parts"):
        load_suite(bad)


def test_a_drop_beyond_tolerance_is_a_regression_and_fails_the_gate():
    base = {"intents/a/macro_f1": 0.90, "intents/a/ece": 0.05}
    result = compare({"intents/a/macro_f1": 0.87, "intents/a/ece": 0.05}, base, TOLERANCES)
    assert not result["passed"]
    assert [r["metric"] for r in result["rows"] if r["status"] == "regression"] == ["intents/a/macro_f1"]


def test_a_drop_within_tolerance_and_an_improvement_pass():
    base = {"intents/a/macro_f1": 0.90, "intents/a/ece": 0.05}
    result = compare({"intents/a/macro_f1": 0.89, "intents/a/ece": 0.02}, base, TOLERANCES)
    assert result["passed"]
    assert {r["metric"]: r["status"] for r in result["rows"]} == {
        "intents/a/ece": "improved",
        "intents/a/macro_f1": "ok",
    }


def test_lower_is_better_metrics_regress_when_they_rise():
    assert lower_is_better("intents/a/ece") and lower_is_better("drafts/own/uncited_draft_rate")
    assert not lower_is_better("retrieval/s/recall@10")
    result = compare({"intents/a/ece": 0.10}, {"intents/a/ece": 0.05}, TOLERANCES)
    assert result["rows"][0]["status"] == "regression"


def test_latency_and_peer_metrics_are_informational():
    base = {"retrieval/s/latency_ms_p95": 5.0, "intents/a/peer:tfidf-linearsvm/macro_f1": 0.9}
    result = compare(
        {"retrieval/s/latency_ms_p95": 50.0, "intents/a/peer:tfidf-linearsvm/macro_f1": 0.1}, base, TOLERANCES
    )
    assert result["passed"] and {r["status"] for r in result["rows"]} == {"info"}
    assert tolerance_for("x/y/latency_ms_p50", TOLERANCES) is None


def test_a_metric_missing_from_the_run_fails_the_gate():
    result = compare({}, {"retrieval/stackfaq/recall@10": 0.9}, TOLERANCES)
    assert not result["passed"] and result["rows"][0]["status"] == "missing"


def test_flatten_keeps_numbers_of_parts_that_ran_and_prefixes_peers():
    parts = {
        "intents/a": {
            "status": "ok",
            "metrics": {"macro_f1": 0.9, "n": 10},
            "peers": {"svm": {"macro_f1": 0.8}},
        },
        "retrieval/b": {"status": "not run", "reason": "not run: x missing"},
    }
    assert flatten(parts) == {
        "intents/a/macro_f1": 0.9,
        "intents/a/n": 10.0,
        "intents/a/peer:svm/macro_f1": 0.8,
    }


def test_the_oos_false_alarm_rate_counts_in_scope_messages_flagged_out_of_scope():
    gold = ["order_status", "out_of_scope", "out_of_scope", "refund_status"]
    pred = ["order_status", "out_of_scope", "refund_status", "out_of_scope"]
    assert oos_false_alarm_rate(gold, pred) == 0.5


def test_reliability_of_a_calibrated_model_has_zero_ece_and_an_overconfident_one_does_not():
    assert reliability([0.75] * 4, [True, True, True, False])["ece"] == 0.0
    assert reliability([0.95] * 4, [True, False, False, False])["ece"] == pytest.approx(0.7)


def test_the_tfidf_svm_peer_learns_a_toy_taxonomy():
    texts = [
        "where is my order",
        "track my parcel",
        "order status please",
        "refund my money",
        "when is my refund",
        "refund not received",
    ]
    labels = ["order_status"] * 3 + ["refund_status"] * 3
    peer = TfidfSvmIntentPeer().fit(texts, labels)
    assert peer.predict(["where is my parcel", "my refund please"]) == ["order_status", "refund_status"]


def _bag_of_words_encoder(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in embedding: normalised word-hash counts (similar words -> similar vectors)."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in re.findall(r"\w+", t.lower()):
            out[i, zlib.crc32(w.encode()) % 64] += 1
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


class _Article:
    title = "Refund status"
    summary = "Refunds reach your card within 5 business days after the return is checked."
    body = "## When\n\nRefunds reach your card within 5 business days after the return is checked."


def test_groundedness_supports_sentences_taken_from_the_article_and_not_invented_ones():
    judge = drafts_eval.GroundednessJudge(_bag_of_words_encoder)
    draft = (
        "Hi Ana, thanks for writing! Refunds reach your card within 5 business days after the return is "
        "checked. We will also send you a free blender as compensation next week. Could you share your order "
        "number?"
    )
    verdicts = judge.judge(draft, [_Article()], "en")
    assert [v["supported"] for v in verdicts] == [True, False]  # greeting and question are not assessed


def test_placeholders_questions_and_short_formulas_are_not_assessed():
    assert not drafts_eval.assessable("Thanks for your message!", "en")
    assert not drafts_eval.assessable("Your order [ORDER_1] ships from the Leeds warehouse today.", "en")
    assert not drafts_eval.assessable("Could you send us the order number from the confirmation email?", "en")
    assert drafts_eval.assessable("Refunds reach your card within five business days.", "en")


def test_the_drafts_labels_cite_only_articles_that_exist():
    cases = drafts_eval.load_cases(REPO_ROOT / "eval" / "data" / "drafts.jsonl")
    ids = {p.stem for p in (REPO_ROOT / "kb_index" / "articles").rglob("*.md")}
    assert len(cases) >= 40
    assert {a for c in cases for a in c.relevant_article_ids} <= ids
    assert {c.expected_language for c in cases} >= {"en", "es", "de", "fr", "pt"}


def test_the_html_report_is_self_contained_and_shows_a_failed_gate():
    report = {
        "suite": "t",
        "mode": "fast",
        "seed": 1,
        "created_at": "now",
        "seconds": 1.0,
        "configuration": {"embedding_model": "m"},
        "parts": {
            "retrieval/s": {
                "status": "ok",
                "seconds": 1.0,
                "metrics": {"recall@10": 0.9},
                "peers": {"bm25-only": {"recall@10": 0.8}},
                "details": {
                    "documents": 3,
                    "chunks": 4,
                    "weights": {},
                    "recall_curve": {"k": [1, 2], "modes": {"hybrid": [0.5, 0.9], "bm25": [0.4, 0.8]}},
                },
            },
            "drafts/own": {"status": "not run", "reason": "not run: x missing"},
        },
        "comparison": compare({"retrieval/s/recall@10": 0.9}, {"retrieval/s/recall@10": 0.95}, TOLERANCES),
        "metrics": {},
    }
    page = render_html(report)
    assert "FAILED" in page and "not run: x missing" in page and "data:image/png;base64," in page
    assert not re.search(r"""(src|href)=["']https?://""", page)
    assert "<script" not in page and "<link" not in page


def test_an_optional_part_with_absent_data_is_reported_not_run(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\nparts:\n  - kind: tone\n    name: own\n    data: eval/data/tone_dev.jsonl\n"
        "  - kind: retrieval\n    name: gone\n    optional: true\n    corpus: nowhere/corpus.jsonl\n"
        "    queries: nowhere/q.jsonl\n    qrels: nowhere/qrels.tsv\n",
        encoding="utf-8",
    )
    report, code = execute(suite, out=tmp_path / "out", fast=True)
    assert report["parts"]["retrieval/gone"] == {
        "status": "not run",
        "reason": "not run: nowhere/corpus.jsonl missing",
        "seconds": report["parts"]["retrieval/gone"]["seconds"],
    }
    assert report["parts"]["tone/own"]["status"] == "ok" and code == 0
    written = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert written["metrics"]["tone/own/f1"] == report["metrics"]["tone/own/f1"]
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000


def test_a_run_below_its_baseline_exits_1_and_parts_left_out_with_only_are_not_missing(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\nparts:\n  - kind: tone\n    name: own\n    data: eval/data/tone_dev.jsonl\n"
        "  - kind: urgency\n    name: own\n    data: eval/data/urgency_dev.jsonl\n",
        encoding="utf-8",
    )
    baseline = tmp_path / "baseline.json"
    baseline.write_text(
        json.dumps({"metrics": {"tone/own/f1": 1.5, "urgency/own/accuracy": 0.99}}), encoding="utf-8"
    )
    report, code = execute(suite, out=tmp_path / "out", baseline=baseline, only=["tone"])
    assert code == 1
    assert [(r["metric"], r["status"]) for r in report["comparison"]["rows"] if r["status"] != "new"] == [
        ("tone/own/f1", "regression")
    ]


CASSETTE_WITH_ANOTHER_REQUEST = """interactions:
- request:
    body: '{"model":"other","messages":[]}'
    headers: {}
    method: POST
    uri: http://127.0.0.1:9/v1/chat/completions
  response:
    body: {string: '{}'}
    headers: {}
    status: {code: 200, message: OK}
version: 1
"""


def test_drafts_replay_a_cassette_and_a_request_it_lacks_falls_back_to_templates_counted(tmp_path):
    cases = (REPO_ROOT / "eval" / "data" / "drafts.jsonl").read_text(encoding="utf-8").splitlines()[:2]
    (tmp_path / "d.jsonl").write_text("\n".join(cases) + "\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text(CASSETTE_WITH_ANOTHER_REQUEST, encoding="utf-8")
    suite = tmp_path / "s.yaml"
    suite.write_text(
        f"name: s\nparts:\n  - kind: drafts\n    name: r\n    data: {tmp_path / 'd.jsonl'}\n"
        f"    cassette: {tmp_path / 'c.yaml'}\n",
        encoding="utf-8",
    )
    report, code = execute(suite, out=tmp_path / "out")
    details = report["parts"]["drafts/r"]["details"]
    assert code == 0 and details["llm_mode"] == "replay"
    assert details["llm_outcomes"]["cassette_miss"] == 2
    assert set(details["generators"]) == {"template"}


def test_an_intents_part_maps_someone_elses_labels_to_the_taxonomy_and_skips_the_rest(tmp_path):
    data = tmp_path / "other.csv"
    data.write_text(
        "utterance,their_label\nwhere is my package right now? i want to track it,track_order\n"
        "please cancel the order i placed this morning,cancel_order\n"
        "i want to open a second account,create_account\n",
        encoding="utf-8",
    )
    label_map = tmp_path / "map.yaml"
    label_map.write_text("track_order: order_status\ncancel_order: cancel_order\n", encoding="utf-8")
    suite = tmp_path / "s.yaml"
    suite.write_text(
        f"name: s\nparts:\n  - kind: intents\n    name: other\n    data: {data}\n"
        f"    text_col: utterance\n    label_col: their_label\n    label_map: {label_map}\n",
        encoding="utf-8",
    )
    report, code = execute(suite, out=tmp_path / "out", fast=True)
    part = report["parts"]["intents/other"]
    assert part["status"] == "ok" and code == 0
    assert part["metrics"]["n"] == 2  # the create_account row has no counterpart and is skipped
    assert part["metrics"]["accuracy"] == 1.0
    label_map.write_text("- not a mapping\n", encoding="utf-8")
    report, _ = execute(suite, out=tmp_path / "out2", fast=True)
    assert "needs a mapping" in json.dumps(report["parts"]["intents/other"])
