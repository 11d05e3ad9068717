"""Offline drafts: what the template generator writes when no LLM is configured (the CI default)."""

from __future__ import annotations

import pytest

from service.drafting.drafter import Drafter
from service.drafting.models import MAX_DRAFT_CHARS, MAX_DRAFTS, GroundingArticle
from service.drafting.slots import SlotResolver
from service.drafting.templates import TemplateLibrary
from service.settings import Settings
from service.tone.checker import ToneChecker
from service.tone.models import Severity
from service.triage.entities import extract_entities
from service.triage.models import (
    Entity,
    HistoryMessage,
    Intent,
    Language,
    Sentiment,
    SentimentLabel,
    TriageRead,
    Urgency,
    UrgencyLevel,
)
from service.triage.taxonomy import load_taxonomy

# the 17 bundled languages and the 3 romanised/code-mixed varieties (issue #15): every one has templates and
# an ask for every slot
TEMPLATE_LANGUAGES = sorted(
    ["en", "es", "de", "fr", "pt", "ar", "id", "hi", "tr", "it", "ru", "nl", "pl", "ja", "zh", "vi", "ko"]
    + ["hi-Latn", "ar-Latn", "tl"]
)
TAXONOMY = load_taxonomy()
TRACKING = GroundingArticle(
    article_id="track-your-order",
    title="Track your order",
    locale="en",
    url="https://help.northwind.example/en/orders/track-your-order",
    summary="To track an order, open Orders in the Northwind app, tap the order, then tap Track package.",
    snippet="Tracking updates can take 24 hours after dispatch.",
)
TRACKING_ES = GroundingArticle(
    article_id="rastrear-pedido",
    title="Rastrear su pedido",
    locale="es",
    url="https://help.northwind.example/es/pedidos/rastrear",
    summary="Para rastrear un pedido, abra Pedidos en la app de Northwind, toque el pedido y luego Rastrear "
    "paquete.",
    snippet="",
)


def make_triage(
    language: str,
    intent: str,
    *,
    automatable: bool | None = None,
    sentiment: str = "neutral",
    urgency: str = "normal",
    entities: list[Entity] | None = None,
    out_of_scope: bool = False,
    text: str | None = None,
) -> TriageRead:
    """A triage result as TriageService would return it; entities are extracted from `text` when given."""
    if text is not None and entities is None:
        entities = extract_entities(text)
    spec = TAXONOMY.get(intent)
    auto = automatable if automatable is not None else bool(spec and spec.automatable and not out_of_scope)
    return TriageRead(
        language=Language(code=language, confidence=0.95, source="text"),
        intent=Intent(name=intent, confidence=0.9, out_of_scope=out_of_scope),
        urgency=Urgency(level=UrgencyLevel(urgency), score=0.5),
        sentiment=Sentiment(label=SentimentLabel(sentiment), score=0.0),
        entities=entities or [],
        automatable=auto,
    )


@pytest.fixture(scope="module")
def tone() -> ToneChecker:
    return ToneChecker.from_path(None, default_locale="en")


@pytest.fixture(scope="module")
def drafter(tone) -> Drafter:
    return Drafter.from_settings(Settings(llm_base_url=None), tone=tone)


def test_without_an_llm_every_draft_comes_from_templates_and_says_so(drafter):
    text = "where is my order NW-48213?"
    result = drafter.draft(text, make_triage("en", "order_status", text=text), [TRACKING])
    assert result.llm_outcome == "not_configured"
    assert result.prompt_version == "templates.en.v1"
    assert result.drafts and all(d.generator == "template" for d in result.drafts)


def test_order_status_without_order_number_asks_exactly_for_the_order_number(drafter):
    result = drafter.draft("hola, ¿dónde está mi pedido?", make_triage("es", "order_status"), [TRACKING_ES])
    assert result.missing_info == ["order_number"]
    assert result.needs_human is False
    for d in result.drafts:
        assert "número de pedido" in d.text
        assert "?" in d.text
        assert "http" not in d.text  # it asks; it does not answer yet


def test_an_order_number_given_earlier_in_the_thread_fills_the_slot(drafter):
    history = [
        HistoryMessage(role="customer", text="mi pedido es el NW-48213"),
        HistoryMessage(role="agent", text="Gracias, lo revisamos."),
    ]
    result = drafter.draft("¿y dónde está?", make_triage("es", "order_status"), [TRACKING_ES], history)
    assert result.missing_info == []
    assert any(TRACKING_ES.url in d.text for d in result.drafts)


def test_an_order_number_from_the_agent_does_not_count_as_given_by_the_customer(drafter):
    history = [HistoryMessage(role="agent", text="Is your order NW-48213 or NW-48214?")]
    result = drafter.draft("where is it", make_triage("en", "order_status"), [TRACKING], history)
    assert result.missing_info == ["order_number"]


def test_complete_automatable_request_is_answered_from_the_top_article_with_one_link(drafter):
    text = "dónde está mi pedido NW-48213"
    result = drafter.draft(text, make_triage("es", "order_status", text=text), [TRACKING_ES, TRACKING])
    assert result.missing_info == []
    assert 1 <= len(result.drafts) <= MAX_DRAFTS
    first = result.drafts[0]
    assert TRACKING_ES.summary in first.text
    assert first.cited_article_ids == ["rastrear-pedido"]
    for d in result.drafts:
        assert d.text.count("http") <= 1


def test_article_in_another_language_is_linked_but_its_summary_is_not_pasted(drafter):
    text = "Wo ist meine Bestellung NW-48213?"
    result = drafter.draft(text, make_triage("de", "order_status", text=text), [TRACKING])
    assert result.language == "de"
    assert all(TRACKING.summary not in d.text for d in result.drafts)
    assert any(TRACKING.url in d.text for d in result.drafts)


def test_intent_needing_a_human_gets_a_handoff_summary_for_the_agent(drafter):
    entities = [Entity(type="order_number", value="NW-55555", start=10, end=18)]
    result = drafter.draft(
        "meu pedido NW-55555 chegou quebrado", make_triage("pt", "damaged_item", entities=entities), []
    )
    assert result.needs_human is True
    summary = result.handoff_summary
    assert summary is not None and summary.generator == "template"
    assert "order number NW-55555" in summary.known
    assert summary.missing == []
    assert summary.wants and summary.wants in summary.text
    assert all("colega" in d.text for d in result.drafts)


def test_handoff_summary_lists_what_is_missing_and_the_draft_asks_for_it(drafter):
    result = drafter.draft("the lamp arrived broken", make_triage("en", "damaged_item"), [])
    assert result.handoff_summary is not None
    assert result.handoff_summary.missing == ["order number"]
    assert any("order number" in d.text for d in result.drafts)


def test_card_number_is_never_asked_for_and_only_its_last_digits_reach_the_summary(drafter):
    card = "4111 1111 1111 1111"
    text = f"there is a charge on my card {card} I never made"
    entities = [
        Entity(type="card_number", value=card, start=text.index(card), end=text.index(card) + len(card))
    ]
    result = drafter.draft(
        text, make_triage("en", "unauthorized_charge", urgency="critical", entities=entities), []
    )
    assert result.needs_human is True
    assert all("card" not in d.text.lower() or "send" not in d.text.lower() for d in result.drafts)
    known = " ".join(result.handoff_summary.known)
    assert card not in known and "1111" in known


def test_out_of_scope_goes_to_a_human(drafter):
    result = drafter.draft(
        "what's the capital of Peru?", make_triage("en", "out_of_scope", out_of_scope=True), []
    )
    assert result.needs_human is True
    assert "outside the known intents" in result.handoff_summary.wants


def test_language_without_templates_falls_back_to_the_default_language(drafter):
    text = "agizo langu NW-48213 liko wapi?"  # Swahili: no bundled templates
    result = drafter.draft(text, make_triage("sw", "order_status", text=text), [TRACKING])
    assert result.language == "en"
    assert result.prompt_version == "templates.en.v1"


def test_greeting_gets_a_short_greeting_back(drafter):
    result = drafter.draft("bonjour", make_triage("fr", "greeting"), [TRACKING])
    assert [d.text for d in result.drafts] == ["Bonjour ! Comment pouvons-nous vous aider aujourd'hui ?"]


def test_negative_sentiment_opens_with_an_apology(drafter):
    result = drafter.draft(
        "my order is late AGAIN", make_triage("en", "delivery_delay", sentiment="negative", entities=[]), []
    )
    assert "sorry" in result.drafts[0].text.lower()


LOCALES = {
    "en": "en-US",
    "es": "es-MX",
    "de": "de-DE",
    "fr": "fr-FR",
    "pt": "pt-PT",
    "ar": "ar-SA",
    "id": "id-ID",
    "hi": "hi-IN",
    "tr": "tr-TR",
    "it": "it-IT",
    "ru": "ru-RU",
    "nl": "nl-NL",
    "pl": "pl-PL",
    "ja": "ja-JP",
    "zh": "zh-CN",
    "vi": "vi-VN",
    "ko": "ko-KR",
    "hi-Latn": "hi-Latn-IN",
    "ar-Latn": "ar-Latn-EG",
    "tl": "tl-PH",
}


@pytest.mark.parametrize("language", TEMPLATE_LANGUAGES)
def test_every_template_draft_is_mobile_sized_and_passes_the_tone_check_in_its_locale(
    drafter, tone, language
):
    """All intents × (missing info / complete / needs human): ≤ 600 chars, ≤ 3 paragraphs, no warn/block
    finding (the formal register where the locale expects it: Sie / vous / usted / o senhor)."""
    long_article = TRACKING.model_copy(update={"summary": "Tracking details. " * 40, "locale": language})
    for intent in TAXONOMY.names:
        for articles in ([], [long_article]):
            for sentiment in ("neutral", "negative"):
                triage = make_triage(language, intent, sentiment=sentiment)
                result = drafter.draft("x", triage, articles, locale=LOCALES[language])
                assert result.language == language
                for d in result.drafts:
                    assert len(d.text) <= MAX_DRAFT_CHARS, (intent, d.text)
                    assert d.text.count("\n\n") <= 2
                    assert "#" not in d.text and "|" not in d.text
                    check = tone.check(d.text, LOCALES[language])
                    bad = [f for f in check.findings if f.severity in (Severity.warn, Severity.block)]
                    assert not bad, (intent, d.text, bad)


def test_every_bundled_language_has_an_acknowledgement_for_every_intent():
    library = TemplateLibrary()
    assert library.languages == sorted(TEMPLATE_LANGUAGES)
    names = set(TAXONOMY.names)
    for code in library.languages:
        data = library.for_language(code).data
        assert names <= set(data.ack) | set(data.standalone), code


def test_every_intent_has_required_slots_defined_with_an_ask_in_every_template_language():
    slots = SlotResolver.load()
    assert set(TAXONOMY.names) <= set(slots.book.intents)
    for name, spec in slots.book.slots.items():
        assert set(TEMPLATE_LANGUAGES) <= set(spec.ask), name
