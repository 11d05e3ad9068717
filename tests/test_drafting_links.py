"""Article links (issue #12, item 2): links stay on the help host and the allow-list, in articles (lint, the
API's upsert, `kb lint`) and in every draft, template or LLM, however a link is disguised."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api import create_app
from service.cli import app as cli_app
from service.drafting.checks import CheckContext, DraftChecker, Policy
from service.drafting.drafter import Drafter
from service.drafting.models import GroundingArticle
from service.kb.links import LinkPolicy, LinkProblem
from service.kb.lint import default_intent_names, errors_of, lint_path
from service.settings import Settings
from service.tone.checker import ToneChecker
from service.tone.models import ToneContext
from service.triage.models import SentimentLabel, UrgencyLevel
from tests.test_drafting_checks import RETURNS  # the same sample article
from tests.test_drafting_templates import make_triage
from tests.test_kb_api import NEW_ARTICLE, authorise, make_settings
from tests.test_kb_lint import article_text

HELP = "https://help.northwind.example"
POLICY = LinkPolicy.from_config(HELP, "northwind.example, track.parcelco.example")
KNOWN = default_intent_names()
NEUTRAL = ToneContext(intent="return_item", sentiment=SentimentLabel.neutral, urgency=UrgencyLevel.normal)

# every disguise the issue names, and a few more; none of them may reach a customer
DISALLOWED = [
    ("https://refunds.evil.example/claim", LinkProblem.foreign_host),
    ("https://help.n\u03bfrthwind.example/en/returns", LinkProblem.idn_host),  # Greek omicron
    ("https://help.xn--nrthwind-l5d.example/en/returns", LinkProblem.idn_host),  # the same, in punycode
    ("https://help.northwind.example.evil.io/en/returns", LinkProblem.look_alike),
    ("https://northwind.com.evil.io/track", LinkProblem.look_alike),
    ("https://help.northwlnd.example/en/returns", LinkProblem.look_alike),
    ("https://help.northwind.example@evil.io/en/returns", LinkProblem.user_info),
    ("https://help.northwind.example\\@evil.io/x", LinkProblem.malformed),
    ("https://help.northwind.example:8443/en/returns", LinkProblem.port),
    ("http://help.northwind.example/en/returns", LinkProblem.not_https),
    ("hxxps://evil.io/track", LinkProblem.obfuscated),
    ("https[:]//evil.io/track", LinkProblem.obfuscated),
    ("javascript:alert(document.cookie)", LinkProblem.script),
    ("data:text/html;base64,PHNjcmlwdD4=", LinkProblem.script),
    ("evil.io/track", LinkProblem.scheme_less),
    ("www.evil.io", LinkProblem.scheme_less),
    ("evil[.]io", LinkProblem.obfuscated),
    ("https://www.help.northwind.example/en/returns", LinkProblem.look_alike),  # a subdomain is another host
]


@pytest.fixture(scope="module")
def checker() -> DraftChecker:
    return DraftChecker(ToneChecker.from_path(None, default_locale="en"), Policy.load(), links=POLICY)


def ctx(articles: list[GroundingArticle] | None = None) -> CheckContext:
    return CheckContext(language="en", locale="en-US", tone=NEUTRAL, articles=articles or [RETURNS])


# -- the policy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://help.northwind.example/en/returns",
        "HTTPS://Help.Northwind.example/en/returns",
        "https://help.northwind.example:443/en/returns",
        "https://track.parcelco.example/t/123",  # on the allow-list
    ],
)
def test_https_links_on_the_help_host_or_an_allowed_host_are_allowed(url):
    assert POLICY.problem(url) is None
    assert [f.problem for f in POLICY.scan(f"See {url}.")] == [None]


@pytest.mark.parametrize(("link", "problem"), DISALLOWED)
def test_every_disguised_or_foreign_link_is_found_and_refused_with_its_reason(link, problem):
    [found] = POLICY.scan(f"Claim it here: {link} today.")
    assert found.text == link and found.problem is problem


def test_allowed_hosts_match_exactly_not_by_suffix():
    assert POLICY.problem("https://evil-track.parcelco.example/t/1") is not None
    assert POLICY.problem("https://parcelco.example/t/1") is not None
    assert (
        LinkPolicy.from_config(HELP).problem("https://track.parcelco.example/t/1") is LinkProblem.foreign_host
    )


def test_e_mail_domains_file_names_and_dotted_words_are_not_links():
    text = "Write to returns@northwind.example, see other.md#steps or file.pdf, e.g. v3.5. Tap Orders.Track"
    assert POLICY.scan(text) == []


def test_a_scheme_less_mention_of_an_allowed_host_stays_and_a_foreign_one_does_not():
    kept, removed = POLICY.scrub("Open northwind.example/orders or evil.io/orders.")
    assert kept == "Open northwind.example/orders or ."
    assert [r.text for r in removed] == ["evil.io/orders"]


def test_a_wildcard_in_the_allow_list_is_a_configuration_error():
    from service.errors import InvalidInput

    with pytest.raises(InvalidInput, match="exact host"):
        LinkPolicy.from_config(HELP, "*.northwind.example")


# -- articles: lint, kb lint, the API's upsert -------------------------------------------------------------


def lint_rules(tmp_path, text: str, allowed: str = "") -> dict[str, list[str]]:
    (tmp_path / "article.md").write_text(text, encoding="utf-8")
    issues = errors_of(
        lint_path(tmp_path, known_intents=KNOWN, help_base_url=HELP, allowed_link_hosts=allowed)
    )
    out: dict[str, list[str]] = {}
    for i in issues:
        out.setdefault(i.rule, []).append(i.message)
    return out


@pytest.mark.parametrize(("link", "problem"), [d for d in DISALLOWED if d[0].startswith("http")])
def test_an_article_url_off_the_help_host_fails_lint(tmp_path, link, problem):
    rules = lint_rules(tmp_path, article_text(url=link))
    assert "disallowed-link" in rules and link in rules["disallowed-link"][0]


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("summary", article_text(summary='"Track it at evil.io/track right away."')),
        ("summary", article_text(summary='"Track it at hxxps://evil.io/track right away."')),
        ("body", article_text(body="## Steps\n\nTrack it at https://help.northwind.example.evil.io/t.\n")),
        ("body", article_text(body="## Steps\n\n[Track it](javascript:alert(1)).\n")),
        ("body", article_text(body="## Steps\n\n[Track it](//evil.io/track).\n")),
        ("body", article_text(body="## Steps\n\n![Tracking map](https://cdn.evil.io/pixel.png)\n")),
        ("body", article_text(body="## Steps\n\nGo to www&#46;evil&#46;io now.\n")),
        ("title", article_text(title="Track at www.evil.io")),
    ],
)
def test_a_summary_body_or_title_link_off_the_help_host_fails_lint(tmp_path, where, text):
    rules = lint_rules(tmp_path, text)
    assert any(m.startswith(f"{where}: link") for m in rules.get("disallowed-link", [])), rules


def test_a_markdown_link_whose_text_shows_another_address_fails_lint(tmp_path):
    body = (
        "## Steps\n\nSee [https://help.northwind.example/en/returns](https://help.northwind.example/en/x).\n"
    )
    assert "deceptive-link" in lint_rules(tmp_path, article_text(body=body))


def test_the_allow_list_setting_admits_exactly_its_hosts(tmp_path):
    body = "## Steps\n\nTrack it at https://track.parcelco.example/t/1.\n"
    assert "disallowed-link" in lint_rules(tmp_path, article_text(body=body))
    assert lint_rules(tmp_path, article_text(body=body), allowed="track.parcelco.example") == {}


def test_kb_lint_reports_a_phishing_article_url_as_an_error(tmp_path):
    (tmp_path / "bad.md").write_text(
        article_text(url="https://help.northwind.example@evil.io/en/orders/good-article"), encoding="utf-8"
    )
    result = CliRunner().invoke(cli_app, ["kb", "lint", str(tmp_path)])
    assert result.exit_code == 1
    assert "[disallowed-link]" in result.output and "user info" in result.output


@pytest.fixture(scope="module")
def kb_client(tmp_path_factory):
    app = create_app(make_settings(tmp_path_factory.mktemp("kb-links")), warm=False)
    with TestClient(app) as client:
        authorise(client)
        yield client


@pytest.mark.parametrize(
    "article",
    [
        NEW_ARTICLE.replace(
            "url: https://help.northwind.example/", "url: https://help.northwind.example.evil.io/"
        ),
        NEW_ARTICLE.replace(
            "summary: Add gift wrapping", "summary: Pay at hxxps://evil.io/pay for gift wrapping"
        ),
        NEW_ARTICLE + "\nTrack it at [help.northwind.example](https://evil.io/track).\n",
    ],
)
def test_an_article_upsert_with_a_phishing_link_is_422_with_the_lint_message(kb_client, article):
    article = article.replace("id: gift-wrap\n", "id: phish\n")
    resp = kb_client.put(
        "/v1/kb/articles/phish", content=article.encode(), headers={"content-type": "text/markdown"}
    )
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_input" and "[disallowed-link]" in error["message"]
    assert not list(kb_client.app.state.container.settings.kb_articles_dir.rglob("phish.md"))


def test_a_json_upsert_with_a_phishing_url_is_422(kb_client):
    payload = {
        "title": "Engraving",
        "locale": "en",
        "intents": ["product_question"],
        "tags": ["gifts"],
        "url": "https://help.n\u03bfrthwind.example/en/products/engraving",
        "summary": "Engraving is free on selected items.",
        "updated_at": "2025-03-20",
        "body": "## Add engraving\n\n1. Tap **Personalise**.\n",
    }
    resp = kb_client.put("/v1/kb/articles/engraving-phish", json=payload)
    assert resp.status_code == 422 and "[disallowed-link]" in resp.json()["error"]["message"]


# -- drafts -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("link", "problem"), DISALLOWED)
def test_every_disallowed_link_is_removed_from_an_llm_draft_and_flagged(checker, link, problem):
    text = f"You can return most items within 30 days. Claim your refund here: {link} today."
    result = checker.check_llm_draft(text, ["returns"], ctx())
    assert result.text is not None and link not in result.text
    assert "evil" not in result.text
    [finding] = [f for f in result.safety_findings if f.rule == "link_not_allowed"]
    assert finding.text == link and finding.action == "removed"


def test_a_markdown_link_showing_the_help_url_but_opening_another_is_flagged(checker):
    text = "You can return most items within 30 days: [https://help.northwind.example/en/returns](https://evil.io/r)"
    result = checker.check_llm_draft(text, ["returns"], ctx())
    assert result.text is not None and "evil.io" not in result.text
    assert "deceptive_link" in {f.rule for f in result.safety_findings}


def test_a_clean_draft_carries_no_safety_findings(checker):
    text = "You can return most items within 30 days. Details: https://help.northwind.example/en/returns"
    result = checker.check_llm_draft(text, ["returns"], ctx())
    assert result.text == text and result.safety_findings == []


@pytest.fixture(scope="module")
def drafter() -> Drafter:
    return Drafter.from_settings(
        Settings(llm_base_url=None), tone=ToneChecker.from_path(None, default_locale="en")
    )


PHISHED = GroundingArticle(  # as an index built before this check, or a tampered one, could still serve it
    article_id="track-your-order",
    title="Track your order",
    locale="en",
    url="https://help.northwind.example@evil.io/en/orders/track",
    summary="To track an order, open hxxps://evil.io/track and enter your card number.",
    snippet="",
)


def test_template_drafts_get_the_same_link_check_as_llm_drafts(drafter):
    text = "where is my order NW-48213?"
    result = drafter.draft(text, make_triage("en", "order_status", text=text), [PHISHED])
    assert result.drafts and all(d.generator == "template" for d in result.drafts)
    for d in result.drafts:
        assert "evil.io" not in d.text and "hxxps" not in d.text
    flagged = {f.text for d in result.drafts for f in d.safety_findings if f.rule == "link_not_allowed"}
    assert flagged == {PHISHED.url, "hxxps://evil.io/track"}


def test_template_drafts_of_a_clean_article_keep_its_link_and_carry_no_findings(drafter):
    text = "where is my order NW-48213?"
    clean = PHISHED.model_copy(
        update={"url": "https://help.northwind.example/en/orders/track", "summary": "Open Orders, tap Track."}
    )
    result = drafter.draft(text, make_triage("en", "order_status", text=text), [clean])
    assert any(clean.url in d.text for d in result.drafts)
    assert all(d.safety_findings == [] for d in result.drafts)


def test_the_agent_sees_what_was_removed_with_the_suggestion(db_url, tmp_path, app):
    from service.pipeline.models import TriagePipelineRead
    from service.triage.models import TriageRequest
    from tests.workflow_harness import harness, real_pipeline, use_pipeline

    real = real_pipeline(app.state.container)
    drafter = app.state.container.drafter

    class PipelineDraftingFromATamperedArticle:
        """The real pipeline, whose drafts come from an article a tampered index could serve."""

        def run(self, request: TriageRequest, *, facts=()) -> TriagePipelineRead:
            result = real.run(request)
            drafts = drafter.draft(request.text, result, [PHISHED], request.history, request.locale)
            return result.model_copy(update={"drafts": drafts})

    with harness(db_url, tmp_path, app.state.container) as h:
        use_pipeline(h.app, PipelineDraftingFromATamperedArticle())
        suggestions = h.ingest("Hi, where is my order NW-48213?")["suggestions"]
        assert suggestions and all("evil.io" not in s["draft_text"] for s in suggestions)
        flagged = [f for s in suggestions for f in s["draft_safety_findings"]]
        assert flagged and {f["rule"] for f in flagged} == {"link_not_allowed"}
        listed = h.get("/v1/suggestions").json()
        items = listed["items"] if isinstance(listed, dict) else listed
        assert any(s["draft_safety_findings"] for s in items)
