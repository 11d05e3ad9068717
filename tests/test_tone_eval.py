"""`replydesk eval tone`: per-rule and micro precision/recall on a labelled file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from eval.cli import app as eval_app

# Mounted the way `service/cli.py` mounts it, so the command line is the real `replydesk eval tone ...`.
app = typer.Typer()
app.add_typer(eval_app, name="eval")

CASES = [
    {
        "id": "a",
        "text": "Approved 👍",
        "locale": "ar-SA",
        "context": {},
        "expected_rules": ["thumbs_up_offensive"],
    },
    {"id": "b", "text": "Approved 👍", "locale": "en-US", "context": {}, "expected_rules": []},
    {
        "id": "c",
        "text": "Sorry 😂",
        "locale": "en-US",
        "context": {"intent": "complaint"},
        "expected_rules": ["playful_emoji_on_negative"],
        "expected_ok": False,
    },
    # deliberately mislabelled: the checker flags 🤞 for Vietnam (a false positive here) and misses this
    # 'rule'
    {"id": "d", "text": "Good luck 🤞", "locale": "vi-VN", "context": {}, "expected_rules": ["shouting"]},
]


def _write(tmp_path: Path, cases: list[dict]) -> Path:
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    return path


def test_eval_tone_reports_precision_and_recall_per_rule_and_overall(tmp_path):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        app, ["eval", "tone", "--data", str(_write(tmp_path, CASES)), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "micro  precision=0.667 recall=0.667" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["cases"] == 4
    assert report["micro"] == {
        "tp": 2,
        "fp": 1,
        "fn": 1,
        "support": 3,
        "precision": 0.6667,
        "recall": 0.6667,
        "f1": 0.6667,
    }
    assert report["per_rule"]["thumbs_up_offensive"]["precision"] == 1.0
    assert report["per_rule"]["crossed_fingers_offensive"] == {
        "tp": 0,
        "fp": 1,
        "fn": 0,
        "support": 0,
        "precision": 0.0,
        "recall": None,
        "f1": None,
    }
    assert report["per_rule"]["shouting"]["recall"] == 0.0
    assert report["exact_match"] == 0.75
    assert report["clean_cases"] == 1 and report["clean_cases_flagged"] == 0
    assert report["ok_agreement"] == 1.0
    assert [e["id"] for e in report["errors"]] == ["d"]


def test_eval_tone_rejects_a_file_that_is_not_tone_cases(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "x"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "tone", "--data", str(path)])
    assert result.exit_code == 2
    assert "not a tone case" in result.output
