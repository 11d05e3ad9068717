"""`kb lint`: one bad article per rule, and the sample knowledge base passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kb_index import SAMPLE_ARTICLES_DIR
from service.cli import app as cli_app
from service.kb.articles import Article, load_documents
from service.kb.lint import default_intent_names, errors_of, lint_documents, lint_path
from service.settings import Settings
from service.triage.taxonomy import load_taxonomy

HELP = "https://help.northwind.example"
ALLOWED = Settings.model_fields["kb_link_allowed_hosts"].default  # the shop's site the sample articles name
KNOWN = default_intent_names()

GOOD_FRONT = {
    "id": "good-article",
    "title": "Track your order",
    "locale": "en",
    "intents": "[order_status]",
    "tags": "[orders]",
    "url": "https://help.northwind.example/en/orders/good-article",
    "summary": "Open Orders and tap Track package.",
    "updated_at": "2025-03-02",
}
GOOD_BODY = "## Steps\n\n1. Open **Orders**.\n2. Tap **Track package**.\n\nSee [the steps](#steps).\n"


def article_text(body: str = GOOD_BODY, **front: str | None) -> str:
    fields = {**GOOD_FRONT, **front}
    head = "\n".join(f"{k}: {v}" for k, v in fields.items() if v is not None)
    return f"---\n{head}\n---\n\n{body}"


def rules_of(tmp_path: Path, text: str, *, extra: dict[str, str] | None = None) -> set[str]:
    (tmp_path / "article.md").write_text(text, encoding="utf-8")
    for name, other in (extra or {}).items():
        (tmp_path / name).write_text(other, encoding="utf-8")
    return {i.rule for i in errors_of(lint_path(tmp_path, known_intents=KNOWN, help_base_url=HELP))}


def test_a_well_formed_article_has_no_errors(tmp_path):
    assert rules_of(tmp_path, article_text()) == set()


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ("no-front-matter", "# Just a body\n\nNo front matter here.\n"),
        ("unreadable", "---\nid: [unclosed\n---\n\nbody\n"),
        ("missing-field", article_text(url=None)),
        ("field-type", article_text(intents="{order_status: 1}")),
        ("invalid-id", article_text(id="Not A Slug")),
        ("invalid-locale", article_text(locale="english")),
        ("unknown-intent", article_text(intents="[order_status, teleport_parcel]")),
        ("summary-too-long", article_text(summary="x" * 301)),
        ("invalid-url", article_text(url="http://help.northwind.example/en/x")),
        ("invalid-date", article_text(updated_at="last tuesday")),
        ("empty-body", article_text(body="")),
        ("long-paragraph", article_text(body="## Steps\n\n" + "word " * 90 + "\n")),
        ("table", article_text(body="## Fees\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")),
        ("image-alt", article_text(body="## Steps\n\n![](screen.png)\n")),
        ("wide-code-block", article_text(body="## Steps\n\n```\n" + "y" * 41 + "\n```\n")),
        ("broken-link", article_text(body="## Steps\n\nSee [returns](no-such-article.md).\n")),
        ("broken-link", article_text(body="## Steps\n\nSee [this](#no-such-heading).\n")),
        (
            "broken-link",
            article_text(body="## Steps\n\nSee [page](https://help.northwind.example/en/gone).\n"),
        ),
    ],
)
def test_each_rule_reports_its_bad_article(tmp_path, rule, text):
    assert rule in rules_of(tmp_path, text)


def test_html_images_without_alt_and_html_tables_are_reported(tmp_path):
    body = '## Steps\n\n<img src="a.png">\n\n<table><tr><td>1</td></tr></table>\n'
    assert {"image-alt", "table"} <= rules_of(tmp_path, article_text(body=body))


def test_duplicate_ids_are_reported_for_both_files(tmp_path):
    rules = rules_of(tmp_path, article_text(), extra={"copy.md": article_text()})
    assert "duplicate-id" in rules
    dupes = [
        i for i in lint_path(tmp_path, known_intents=KNOWN, help_base_url=HELP) if i.rule == "duplicate-id"
    ]
    assert len(dupes) == 2


def test_links_to_other_articles_by_file_id_or_url_resolve(tmp_path):
    other = article_text(
        id="other", url="https://help.northwind.example/en/other", body="## Other steps\n\nText.\n"
    )
    body = (
        "## Steps\n\nSee [file](other.md), [anchor](other.md#other-steps), [id](other) and "
        "[url](https://help.northwind.example/en/other/).\n"
    )
    assert rules_of(tmp_path, article_text(body=body), extra={"other.md": other}) == set()


def test_long_titles_are_a_warning_not_an_error(tmp_path):
    (tmp_path / "article.md").write_text(article_text(title="T" * 90), encoding="utf-8")
    issues = lint_path(tmp_path, known_intents=KNOWN, help_base_url=HELP)
    assert [i.rule for i in issues] == ["long-title"]
    assert errors_of(issues) == []


def test_issue_lines_point_into_the_file(tmp_path):
    text = article_text(body="## Fees\n\n| a | b |\n|---|---|\n")
    (tmp_path / "article.md").write_text(text, encoding="utf-8")
    [issue] = [i for i in lint_path(tmp_path, known_intents=KNOWN) if i.rule == "table"]
    assert text.splitlines()[issue.line - 1].startswith("| a | b |")


def test_the_sample_knowledge_base_passes_lint():
    issues = lint_path(
        SAMPLE_ARTICLES_DIR, known_intents=KNOWN, help_base_url=HELP, allowed_link_hosts=ALLOWED
    )
    assert issues == []


def test_the_sample_knowledge_base_covers_every_automatable_intent_in_several_languages():
    docs, errors = load_documents(SAMPLE_ARTICLES_DIR)
    assert errors == []
    articles = [Article.from_doc(d) for d in docs]
    covered = {i for a in articles for i in a.intents}
    automatable = {n for n, spec in load_taxonomy().intents.items() if spec.automatable}
    assert automatable - covered == set()
    assert len(articles) >= 40
    non_english = [a for a in articles if a.language in {"es", "de", "fr", "pt"}]
    assert len(non_english) >= 10
    assert {a.language for a in non_english} == {"es", "de", "fr", "pt"}
    assert all(len(a.summary) <= 300 for a in articles)


def test_cli_lint_exits_non_zero_on_errors_and_zero_on_the_sample(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["kb", "lint", str(SAMPLE_ARTICLES_DIR)])
    assert ok.exit_code == 0, ok.output
    assert "0 error(s)" in ok.output
    (tmp_path / "bad.md").write_text(article_text(summary="x" * 400), encoding="utf-8")
    bad = runner.invoke(cli_app, ["kb", "lint", str(tmp_path)])
    assert bad.exit_code == 1
    assert "[summary-too-long]" in bad.output


def test_lint_documents_can_report_only_one_file_of_a_collection(tmp_path):
    (tmp_path / "a.md").write_text(article_text(id="a", summary="x" * 400), encoding="utf-8")
    (tmp_path / "b.md").write_text(article_text(id="b", locale="english"), encoding="utf-8")
    docs, _ = load_documents(tmp_path)
    issues = lint_documents(docs, known_intents=KNOWN, only={str(tmp_path / "b.md")})
    assert {i.rule for i in issues} == {"invalid-locale"}
