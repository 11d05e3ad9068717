"""`replydesk eval urgency`: metrics on a labelled file, through the real triage service."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from eval.urgency import compute_metrics, load_examples, load_mapped_examples
from service.errors import InvalidInput
from service.settings import REPO_ROOT, get_settings

ROWS = [
    {"text": "someone hacked my account and is ordering with my card", "urgency": "critical"},
    {"text": "mi abogado les enviará una carta", "urgency": "critical", "locale": "es-ES"},
    {"text": "can't log in, need access asap", "urgency": "high"},
    {
        "text": "hello??",
        "urgency": "high",
        "history": [
            {"role": "customer", "text": "where is my order?"},
            {"role": "customer", "text": "any news?"},
        ],
    },
    {"text": "can I change the delivery address on my order?", "urgency": "normal"},
    {"text": "thanks so much, all sorted!", "urgency": "low"},
]


def test_metrics_on_known_predictions():
    gold = ["critical", "critical", "high", "normal", "low", "low"]
    pred = ["critical", "high", "high", "normal", "low", "normal"]
    m = compute_metrics(gold, pred)
    assert m["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert m["critical_recall"] == 0.5
    assert m["per_level"]["high"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(0.6667, abs=1e-4),
        "support": 1,
    }
    assert m["confusion"]["labels"] == ["low", "normal", "high", "critical"]
    assert m["confusion"]["matrix"][3] == [0, 0, 1, 1]  # gold critical: one right, one called high
    # macro-F1 over the four levels present: low 2/3, normal 2/3, high 2/3, critical 2/3
    assert m["macro_f1"] == pytest.approx(0.6667, abs=1e-4)


def test_a_bad_row_names_its_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hi", "urgency": "low"}\n{"text": "hi", "urgency": "extreme"}\n')
    with pytest.raises(InvalidInput, match=r"bad.jsonl:2"):
        load_examples(path)
    path.write_text('{"text": "   ", "urgency": "low"}\n')
    with pytest.raises(InvalidInput, match=r"bad.jsonl:1"):
        load_examples(path)


def test_eval_urgency_command_prints_metrics_and_writes_the_report(tmp_path, monkeypatch):
    from service.cli import app

    data = tmp_path / "tiny.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    out = tmp_path / "report.json"
    monkeypatch.setenv("REPLYDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(
        "REPLYDESK_CACHE_DIR", str(REPO_ROOT / "data" / "cache")
    )  # reuse the cached intent model
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["eval", "urgency", "--data", str(data), "--out", str(out)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "macro_f1=" in result.output and "critical_recall=" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["n"] == 6
    assert set(report["per_level"]) == {"low", "normal", "high", "critical"}
    assert sum(map(sum, report["confusion"]["matrix"])) == 6
    assert report["critical_recall"] == 1.0
    assert len(report["errors"]) == round(6 * (1 - report["accuracy"]))


def test_eval_urgency_rejects_a_missing_file(tmp_path):
    from service.cli import app

    result = CliRunner().invoke(app, ["eval", "urgency", "--data", str(tmp_path / "nope.jsonl")])
    assert result.exit_code != 0


def test_a_label_map_turns_an_intent_dataset_into_urgency_examples(tmp_path):
    data = tmp_path / "intents.csv"
    data.write_text(
        "text,category\nmy card was stolen,lost_card\nwhat currencies do you support,currencies\n"
        "when will my card arrive,card_arrival\nhello,greeting\n",
        encoding="utf-8",
    )
    label_map = tmp_path / "map.yaml"
    label_map.write_text(
        "critical: [lost_card]\nlow: [currencies]\nnormal: [card_arrival]\n", encoding="utf-8"
    )
    examples = load_mapped_examples(data, label_map, label_col="category")
    assert [(e.request.text, e.gold) for e in examples] == [  # the unmapped label's row is skipped
        ("my card was stolen", "critical"),
        ("what currencies do you support", "low"),
        ("when will my card arrive", "normal"),
    ]
    label_map.write_text("urgent: [lost_card]\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="urgency levels"):
        load_mapped_examples(data, label_map, label_col="category")
    label_map.write_text("low: [lost_card]\nhigh: [lost_card]\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="mapped twice"):
        load_mapped_examples(data, label_map, label_col="category")
    label_map.write_text("low: [nothing_like_it]\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="no rows"):
        load_mapped_examples(data, label_map, label_col="category")


def test_the_banking77_urgency_map_names_real_labels_once(shared_datasets):
    import csv

    import yaml

    spec = yaml.safe_load(
        (REPO_ROOT / "eval" / "data" / "banking77_urgency.yaml").read_text(encoding="utf-8")
    )
    mapped = [label for labels in spec.values() for label in labels]
    with (shared_datasets / "banking77" / "train.csv").open(encoding="utf-8") as f:
        known = {row["category"] for row in csv.DictReader(f)}
    assert len(mapped) == len(set(mapped)) and set(mapped) <= known
    assert set(spec) == {"critical", "high", "normal", "low"}
