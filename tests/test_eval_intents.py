"""`replydesk eval intents` / `eval split`: metrics on a toy case, the JSON report, splits, and a Banking77
floor."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from eval.intents import evaluate, score
from eval.splits import load_rows, stratified_split
from service.cli import app
from service.embeddings import Embedder, get_embedder
from service.settings import REPO_ROOT, Settings, get_settings
from service.triage.taxonomy import OUT_OF_SCOPE

runner = CliRunner()

TRAIN = [
    ("where is my parcel", "track"),
    ("track my order please", "track"),
    ("has my package shipped", "track"),
    ("tracking number for my order", "track"),
    ("when does my parcel arrive", "track"),
    ("send me an invoice", "bill"),
    ("i need a receipt", "bill"),
    ("vat invoice for my company", "bill"),
    ("can i get a copy of the bill", "bill"),
    ("invoice with my tax id", "bill"),
    ("tell me a joke", "oos"),
    ("what's the weather", "oos"),
    ("who is the president", "oos"),
]
TEST = [("where's my package?", "track"), ("please send the invoice", "bill"), ("sing me a song", "oos")]


@pytest.fixture(scope="module")
def embedder(settings: Settings) -> Embedder:
    return get_embedder(settings.embedding_model, settings.resolved_cache_dir / "embeddings")


@pytest.fixture
def cli_env(monkeypatch, tmp_path: Path):
    """The CLI reads settings from the environment: point data at a temp dir, share the embedding cache."""
    monkeypatch.setenv("REPLYDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REPLYDESK_CACHE_DIR", str(REPO_ROOT / "data" / "cache"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _write_csv(path: Path, rows, header=("text", "label")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_score_computes_accuracy_per_label_confusion_and_oos_metrics_on_a_toy_case():
    gold = ["a", "a", "b", OUT_OF_SCOPE]
    pred = ["a", "b", "b", OUT_OF_SCOPE]
    report = score(gold, pred, [0.9, 0.6, 0.8, 0.7], oos=True)
    assert report["n"] == 4
    assert report["accuracy"] == 0.75
    assert report["per_label"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}
    assert report["per_label"]["b"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert report["macro_f1"] == pytest.approx((0.6667 + 0.6667 + 1.0) / 3, abs=1e-4)
    assert report["confusion"]["labels"] == ["a", "b", OUT_OF_SCOPE]
    assert report["confusion"]["matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert report["confusion"]["top"] == [{"gold": "a", "pred": "b", "count": 1}]
    assert report["in_scope_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["oos_recall"] == 1.0
    assert report["oos_precision"] == 1.0
    # |0.9-1|, |0.6-0|, |0.8-1|, |0.7-1| in four bins, each weighted 1/4
    assert report["ece"] == pytest.approx((0.1 + 0.6 + 0.2 + 0.3) / 4, abs=1e-4)


def test_evaluate_trains_the_production_classifier_and_times_single_messages(embedder, tmp_path: Path):
    result = evaluate(TRAIN, TEST, embedder=embedder, oos_label="oos", latency_n=3, cache_dir=tmp_path)
    report = result.report
    assert report["n"] == 3
    assert report["latency_ms"]["n"] == 3
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"]
    assert report["training"]["n_train"] == len(TRAIN)
    assert report["training"]["oos_examples"] == 3
    assert [p.name for p in result.predictions][:2] == ["track", "bill"]


def test_cli_eval_intents_writes_a_json_report_with_every_metric(cli_env: Path):
    train = _write_csv(cli_env / "train.csv", TRAIN)
    test = _write_csv(cli_env / "test.csv", TEST)
    out = cli_env / "report.json"
    res = runner.invoke(
        app,
        [
            "eval",
            "intents",
            "--train",
            str(train),
            "--test",
            str(test),
            "--oos-label",
            "oos",
            "--out",
            str(out),
            "--latency-n",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    for key in (
        "accuracy",
        "macro_f1",
        "n",
        "ece",
        "per_label",
        "confusion",
        "latency_ms",
        "in_scope_accuracy",
        "oos_recall",
        "oos_precision",
        "training",
    ):
        assert key in report, key
    assert set(report["latency_ms"]) >= {"p50", "p95"}
    assert report["n"] == 3
    assert set(report["per_label"]) >= {"track", "bill", OUT_OF_SCOPE}
    assert "accuracy" in res.output


def test_cli_eval_intents_reads_clinc_style_json_splits(cli_env: Path):
    data = {
        "train": [[t, lab] for t, lab in TRAIN if lab != "oos"],
        "oos_train": [[t, "oos"] for t, lab in TRAIN if lab == "oos"],
        "val": [[t, lab] for t, lab in TEST if lab != "oos"],
        "oos_val": [["sing me a song", "oos"]],
    }
    path = cli_env / "data_train_val.json"
    path.write_text(json.dumps(data))
    out = cli_env / "clinc.json"
    res = runner.invoke(
        app,
        [
            "eval",
            "intents",
            "--train",
            str(path),
            "--test",
            str(path),
            "--oos-label",
            "oos",
            "--out",
            str(out),
            "--latency-n",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["n"] == 3
    assert report["n_oos"] == 1


def test_cli_eval_intents_rejects_a_file_without_the_label_column(cli_env: Path):
    bad = _write_csv(cli_env / "bad.csv", [("x", "a")], header=("text", "intent"))
    res = runner.invoke(app, ["eval", "intents", "--train", str(bad), "--test", str(bad)])
    assert res.exit_code == 2
    assert "needs columns" in " ".join(res.output.split())  # the console may wrap the message


def test_cli_split_is_stratified_and_reproducible(cli_env: Path):
    rows = [(f"message {i} about {lab}", lab) for lab in ("a", "b", "c") for i in range(20)]
    src = _write_csv(cli_env / "all.csv", rows)
    for out_dir in ("s1", "s2"):
        res = runner.invoke(
            app,
            [
                "eval",
                "split",
                str(src),
                "--out-dir",
                str(cli_env / out_dir),
                "--test-frac",
                "0.25",
                "--seed",
                "7",
            ],
        )
        assert res.exit_code == 0, res.output
    test_rows = load_rows(cli_env / "s1" / "test.csv")
    assert len(test_rows) == 15
    assert {lab: sum(1 for _, x in test_rows if x == lab) for lab in "abc"} == {"a": 5, "b": 5, "c": 5}
    assert (cli_env / "s1" / "test.csv").read_text() == (cli_env / "s2" / "test.csv").read_text()
    train_rows = load_rows(cli_env / "s1" / "train.csv")
    assert not set(train_rows) & set(test_rows)
    assert len(train_rows) == 45


def test_stratified_split_keeps_singleton_labels_in_train():
    rows = [("x1", "a"), ("x2", "a"), ("x3", "a"), ("x4", "a"), ("only", "b")]
    train, test = stratified_split(rows, test_frac=0.25, seed=1)
    assert ("only", "b") in train
    assert len(test) == 1


@pytest.mark.shared
def test_banking77_subset_accuracy_floor(shared_datasets: Path, embedder, tmp_path: Path):
    """15 Banking77 intents, 40 training / 12 test rows each (seeded): a regression drops well below the
    floor."""
    rows = load_rows(shared_datasets / "banking77" / "train.csv", label_col="category")
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in rows:
        by_label[label].append(text)
    rng = random.Random(13)
    labels = sorted(rng.sample(sorted(by_label), 15))
    train, test = [], []
    for label in labels:
        texts = rng.sample(by_label[label], 52)
        train += [(t, label) for t in texts[:40]]
        test += [(t, label) for t in texts[40:]]
    report = evaluate(train, test, embedder=embedder, latency_n=0, cache_dir=tmp_path).report
    assert report["accuracy"] >= 0.94, report["accuracy"]
    assert report["ece"] < 0.08
    assert np.isfinite(report["macro_f1"])
