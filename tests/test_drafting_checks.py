"""Validation and repair of LLM drafts before they ship (citations, URLs, layout, length, policy, language,
tone)."""

from __future__ import annotations

from unittest.mock import create_autospec

import pytest

from service.drafting.checks import CheckContext, DraftChecker, DraftLanguage, Policy
from service.drafting.models import MAX_DRAFT_CHARS, GroundingArticle
from service.tone.checker import ToneChecker
from service.tone.models import Severity, TextSpan, ToneCheckRead, ToneContext, ToneFinding
from service.triage.models import SentimentLabel, UrgencyLevel

RETURNS = GroundingArticle(
    article_id="returns",
    title="Returns",
    locale="en",
    url="https://help.northwind.example/en/returns",
    summary="You can return most items within 30 days from Orders > Return item.",
    snippet="Refunds go back to the original payment method within 5 business days.",
)
SHIPPING = GroundingArticle(
    article_id="shipping",
    title="Shipping",
    locale="en",
    url="https://help.northwind.example/en/shipping",
    summary="Standard shipping takes 3-5 business days.",
    snippet="",
)
NEUTRAL = ToneContext(intent="return_item", sentiment=SentimentLabel.neutral, urgency=UrgencyLevel.normal)


@pytest.fixture(scope="module")
def checker() -> DraftChecker:
    return DraftChecker(ToneChecker.from_path(None, default_locale="en"), Policy.load())


def ctx(language: str = "en", locale: str | None = "en-US", tone: ToneContext = NEUTRAL) -> CheckContext:
    return CheckContext(language=language, locale=locale, tone=tone, articles=[RETURNS, SHIPPING])


def test_a_clean_grounded_draft_passes_unchanged(checker):
    text = (
        "Thanks for reaching out! You can return most items within 30 days from Orders > Return item.\n\n"
        "Details: https://help.northwind.example/en/returns"
    )
    result = checker.check_llm_draft(text, ["returns"], ctx())
    assert result.text == text
    assert result.cited_article_ids == ["returns"]
    assert result.repairs == []


def test_citations_of_articles_that_were_not_provided_are_removed(checker):
    result = checker.check_llm_draft(
        "You can return most items within 30 days from your orders page.",
        ["returns", "made-up-article"],
        ctx(),
    )
    assert result.cited_article_ids == ["returns"]
    assert "unknown_citation_removed" in result.repairs


def test_a_url_that_is_not_a_cited_article_is_stripped(checker):
    text = "You can return most items within 30 days. Claim your refund at https://evil.example/claim now."
    result = checker.check_llm_draft(text, ["returns"], ctx())
    assert result.text is not None and "evil.example" not in result.text
    assert "foreign_url_removed" in result.repairs


def test_only_the_first_article_url_is_kept_and_an_uncited_article_link_is_cited(checker):
    text = (
        "Returns are easy: https://help.northwind.example/en/returns and shipping info: "
        "https://help.northwind.example/en/shipping."
    )
    result = checker.check_llm_draft(text, [], ctx())
    assert result.text.count("https://") == 1
    assert result.cited_article_ids == ["returns"]
    assert {"citation_added", "extra_url_removed"} <= set(result.repairs)


def test_markdown_headings_tables_and_bullets_are_flattened_to_chat_text(checker):
    text = (
        "## Your return\n\n| Step | Action |\n|---|---|\n| 1 | Open Orders |\n\n"
        "- Open **Orders**\n- Tap Return item\n\nThanks for your message!"
    )
    result = checker.check_llm_draft(text, ["returns"], ctx())
    assert result.text is not None
    assert "#" not in result.text and "|" not in result.text and "**" not in result.text
    assert "markdown_removed" in result.repairs
    assert result.text.count("\n\n") <= 2


def test_too_long_draft_is_trimmed_at_a_sentence_to_600_characters(checker):
    text = " ".join(["You can return most items within 30 days from the Orders page in the app."] * 15)
    result = checker.check_llm_draft(text, ["returns"], ctx())
    assert result.text is not None
    assert len(result.text) <= MAX_DRAFT_CHARS
    assert result.text.endswith(".")
    assert "trimmed" in result.repairs


def test_more_than_three_paragraphs_are_merged_into_three(checker):
    text = "\n\n".join(
        [
            "Thanks for writing to us.",
            "You can return most items within 30 days.",
            "Open Orders and tap Return item.",
            "Refunds take about 5 business days.",
        ]
    )
    result = checker.check_llm_draft(text, ["returns"], ctx())
    assert result.text.count("\n\n") == 2
    assert "paragraphs_merged" in result.repairs


@pytest.mark.parametrize(
    "text",
    [
        "Of course! We will give you a 100% refund right away.",
        "We'll refund you in full today, no questions asked.",
        "Le reembolsaremos el importe completo hoy mismo, sin problema alguno.",
        "As a gesture we can offer you a voucher for your next order.",
    ],
)
def test_refund_or_discount_promises_that_no_article_makes_are_dropped(checker, text):
    language = "es" if text.startswith("Le ") else "en"
    result = checker.check_llm_draft(text, ["shipping"], ctx(language=language, locale=language))
    assert result.text is None
    assert result.dropped_because.startswith("policy:")


def test_a_refund_statement_grounded_in_a_cited_article_is_allowed(checker):
    policy = Policy.load()
    grounded = GroundingArticle(
        article_id="guarantee",
        title="Price guarantee",
        url="https://help.northwind.example/g",
        summary="If a price drops within 7 days we will refund the difference.",
        snippet="",
    )
    text = "Good news: if the price drops within 7 days we will refund the difference to your card."
    assert policy.violations(text, grounded.summary) == []
    assert policy.violations(text, "") == ["money_promise"]


def test_a_draft_in_the_wrong_language_is_dropped(checker):
    text = "Thank you for your message. You can return most items within 30 days from the Orders page."
    result = checker.check_llm_draft(text, ["returns"], ctx(language="es", locale="es-MX"))
    assert result.text is None
    assert result.dropped_because == "language:en"


def test_leftover_placeholders_the_llm_invented_drop_the_draft(checker):
    result = checker.check_llm_draft("We found your order [ORDER_7], it ships tomorrow.", [], ctx())
    assert result.text is None and result.dropped_because == "unknown_placeholder"


def test_a_block_finding_is_repaired_with_the_tone_checkers_suggestion(checker):
    upset = ToneContext(intent="complaint", sentiment=SentimentLabel.negative, urgency=UrgencyLevel.high)
    text = "We are sorry about the delay with your order, a colleague is looking into it now 😂"
    result = checker.check_llm_draft(text, [], ctx(tone=upset))
    assert result.text is not None and "😂" not in result.text
    assert "tone_suggestion_applied" in result.repairs
    assert all(f.severity != "block" for f in result.tone_findings)


def test_no_draft_ships_with_a_block_finding_the_suggestion_cannot_fix():
    """The bundled block rules are all emoji rules that `suggested_text` fixes, so a rule the suggestion
    cannot fix is simulated with a typed fake of the tone checker that blocks every text."""
    finding = ToneFinding(
        span=TextSpan(start=0, end=5, text="Sorry"),
        rule="custom_block",
        severity=Severity.block,
        reason="test rule",
        suggestion="rewrite",
        source="test",
    )
    fake = create_autospec(ToneChecker, instance=True)
    fake.check.side_effect = lambda text, locale=None, context=None: ToneCheckRead(
        ok=False,
        findings=[finding],
        suggested_text=text + " (checked)",
        locale="en",
        locale_recognised=True,
        emoji_count=0,
    )
    checker = DraftChecker(fake, Policy.load())
    result = checker.check_llm_draft("Sorry about the delay with your order, we are on it.", [], ctx())
    assert result.text is None
    assert result.dropped_because == "tone:custom_block"
    assert fake.check.call_count == 2  # the original and the suggestion were both checked


def test_draft_language_check_tells_close_languages_apart():
    lang = DraftLanguage()
    assert (
        lang.mismatch(
            "Olá, obrigado pela sua mensagem. Lamentamos que o seu item tenha chegado danificado.", "es"
        )
        == "pt"
    )
    assert (
        lang.mismatch(
            "Hola, gracias por escribirnos. Con gusto le ayudo a consultar el estado de su pedido.", "es"
        )
        is None
    )
    assert lang.mismatch("ok 👍", "de") is None  # too short to judge: not dropped


def test_a_draft_showing_an_internal_article_id_is_dropped(checker):
    articles = [RETURNS.model_copy(update={"article_id": "start-a-return"})]
    context = CheckContext(language="en", locale="en-US", tone=NEUTRAL, articles=articles)
    result = checker.check_llm_draft("See start-a-return (1) for the next steps of your return.", [], context)
    assert result.text is None and result.dropped_because == "internal_id"


@pytest.mark.parametrize(
    "text",
    [
        "earlier_messages</h3> } Reply with the JSON object only. Thanks for your patience with us.",
        'Thanks for your message! {"drafts": ["We will check your order"]} and get back to you.',
        "order_status (The customer wants to know where an order is or what state it is in.)",
    ],
)
def test_a_draft_echoing_the_prompt_or_json_is_dropped(checker, text):
    result = checker.check_llm_draft(text, [], ctx())
    assert result.text is None and result.dropped_because == "prompt_artifact"
