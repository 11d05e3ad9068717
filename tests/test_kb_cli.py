"""CLI: `kb build | search`, `eval retrieval` (BEIR files) and `bench retrieval`, plus the metric
definitions."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bench.kb import gaussian_mixture
from eval.retrieval import query_metrics, split_queries
from service.cli import app as cli_app
from service.settings import REPO_ROOT, get_settings
from tests.test_kb_index import write_kb

runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """`get_settings()` of the CLI pointed at a temporary articles/index directory."""
    articles = write_kb(tmp_path / "articles")
    monkeypatch.setenv("REPLYDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REPLYDESK_CACHE_DIR", str(REPO_ROOT / "data" / "cache"))
    monkeypatch.setenv("REPLYDESK_KB_ARTICLES_DIR", str(articles))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_kb_build_is_incremental_and_search_prints_articles(cli_env):
    first = runner.invoke(cli_app, ["kb", "build"])
    assert first.exit_code == 0, first.output
    assert "published" in first.output and "embedded" in first.output
    again = runner.invoke(cli_app, ["kb", "build"])
    assert again.exit_code == 0 and "unchanged" in again.output and "embedded 0" in again.output
    found = runner.invoke(cli_app, ["kb", "search", "promo code at checkout", "--k", "1", "--json"])
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["hits"][0]["article_id"] == "discount"


def test_kb_build_refuses_articles_that_fail_lint(cli_env):
    (cli_env / "articles" / "broken.md").write_text("no front matter\n", encoding="utf-8")
    result = runner.invoke(cli_app, ["kb", "build"])
    assert result.exit_code == 1 and "no-front-matter" in result.output
    assert runner.invoke(cli_app, ["kb", "build", "--skip-invalid"]).exit_code == 0


def test_kb_search_without_an_index_fails_clearly(cli_env):
    result = runner.invoke(cli_app, ["kb", "search", "anything"])
    assert result.exit_code == 1 and "kb build" in result.output


def test_query_metrics_follow_their_definitions():
    relevant = {"d1": 1, "d2": 1}
    m = query_metrics(["x", "d1", "y", "d2"], relevant, k=10)
    assert m["recall@1"] == 0 and m["recall@5"] == 1.0 and m["mrr@10"] == 0.5
    ideal = 1 + 1 / 1.5849625007211562
    assert m["ndcg@10"] == pytest.approx((1 / 1.5849625007211562 + 1 / 2.321928094887362) / ideal)
    assert query_metrics([], {"d1": 1})["mrr@10"] == 0


def test_query_split_is_seeded_and_disjoint():
    ids = [f"q{i}" for i in range(10)]
    dev, test = split_queries(ids, 0.5, seed=3)
    assert (dev, test) == split_queries(list(reversed(ids)), 0.5, seed=3)
    assert not set(dev) & set(test) and len(dev) == 5


def test_eval_retrieval_reads_beir_files_and_reports_every_mode(tmp_path):
    docs = [
        ("d1", "How do I reset my password", "Tap Forgot password on the sign-in screen."),
        ("d2", "Shipping costs", "Standard shipping is free over 50 dollars."),
        ("d3", "Return an item", "You have 30 days to return items."),
    ]
    queries = [
        ("q1", "forgot my password"),
        ("q2", "how much is delivery"),
        ("q3", "send back a product"),
        ("q4", "password reset link"),
    ]
    qrels = [("q1", "d1"), ("q2", "d2"), ("q3", "d3"), ("q4", "d1")]
    (tmp_path / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in docs), encoding="utf-8"
    )
    (tmp_path / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "text": t}) for i, t in queries), encoding="utf-8"
    )
    (tmp_path / "qrels.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "\n".join(f"{q}\t{d}\t1" for q, d in qrels), encoding="utf-8"
    )
    out = tmp_path / "report.json"
    result = runner.invoke(
        cli_app,
        [
            "eval",
            "retrieval",
            "--corpus",
            str(tmp_path / "corpus.jsonl"),
            "--queries",
            str(tmp_path / "queries.jsonl"),
            "--qrels",
            str(tmp_path / "qrels.tsv"),
            "--mode",
            "all",
            "--tune-split",
            "0.5",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["modes"]) == {"dense", "bm25", "hybrid"}
    hybrid = report["modes"]["hybrid"]
    assert {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "latency_ms"} <= set(hybrid)
    assert hybrid["mrr@10"] == 1.0 and report["queries"] == 4
    assert set(report["tuning"]["test"]) == {"dense", "bm25", "hybrid"}
    assert "MRR@10" in result.output


@pytest.mark.slow  # builds and benchmarks flat, IVF and HNSW indexes
def test_bench_retrieval_writes_json_with_every_index_type(tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(
        cli_app,
        ["bench", "retrieval", "--sizes", "1500", "--dim", "32", "--queries", "50", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["results"]
    assert [r["index_type"] for r in rows] == ["flat", "ivf", "hnsw"]
    assert rows[0]["recall@10"] == 1.0
    assert all({"build_s", "index_mb", "query_ms", "recall@10"} <= set(r) for r in rows)


def test_synthetic_vectors_are_clustered_unit_vectors():
    data = gaussian_mixture(2_000, 64, seed=0, clusters=10)
    assert data.shape == (2_000, 64)
    assert abs(float((data**2).sum(axis=1).mean()) - 1.0) < 1e-4
    sims = data[:200] @ data[:200].T
    # same-cluster pairs are far more similar than random unit vectors in 64 dimensions (mean ~0)
    assert (sims > 0.3).mean() > 0.05
