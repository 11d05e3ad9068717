"""Offline drafts that answer: when the top article answers a how-to question, the draft gives its numbered
steps and link and asks for the missing details too; an article in another language is linked, marked with
its language, and the draft stays in the customer's language."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from service.drafting.drafter import Drafter, article_details
from service.drafting.models import MAX_DRAFT_CHARS
from service.drafting.slots import SlotBook, SlotResolver
from service.drafting.templates import TEMPLATES_DIR, TemplateLibrary, numbered
from service.errors import InvalidInput
from service.kb.for_triage import article_steps, suggest_for_triage
from service.kb.models import ArticleHit, ArticleRead
from service.settings import Settings
from service.tone.checker import ToneChecker
from service.triage.taxonomy import load_taxonomy
from tests.test_drafting_templates import make_triage
from tests.test_kb_retrieval import kb  # noqa: F401  (the module-scoped knowledge base fixture)

RETURN_STEPS = ("Go to Orders and tap the order.", "Tap Return items.", "Choose the items and a reason.")


def _hit(article_id: str, locale: str, intents: tuple[str, ...], steps: tuple[str, ...] = ()) -> ArticleHit:
    return ArticleHit(
        article_id=article_id,
        title="Start a return",
        url=f"https://help.northwind.example/{locale}/returns/{article_id}",
        summary="Start a return in Orders: tap the order, then Return items. You have 30 days from delivery.",
        snippet="Tap Return items.",
        score=0.9,
        matched_section="Return online",
        locale=locale,
    ).with_details(intents, steps)


RETURN_EN = _hit("start-a-return", "en", ("return_item",), RETURN_STEPS)


@pytest.fixture(scope="module")
def templates_dir(tmp_path_factory) -> Path:
    """The bundled en and es templates; es marks English articles as its file would."""
    root = tmp_path_factory.mktemp("templates")
    for lang in ("en", "es"):
        data = yaml.safe_load((TEMPLATES_DIR / f"{lang}.yaml").read_text(encoding="utf-8"))
        if lang == "es":
            data["article_language"] = {"en": "(en inglés)"}
        (root / f"{lang}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def drafter(templates_dir) -> Drafter:
    drafter = Drafter.from_settings(
        Settings(llm_base_url=None), tone=ToneChecker.from_path(None, default_locale="en")
    )
    drafter.templates = TemplateLibrary(templates_dir)
    return drafter


def test_a_how_to_question_gets_the_articles_steps_its_link_and_the_question_for_the_order_number(drafter):
    text = "I'd like to return the lamp I bought"
    result = drafter.draft(text, make_triage("en", "return_item", text=text), [RETURN_EN])
    assert result.missing_info == ["order_number"]
    first = result.drafts[0]
    assert "1. Go to Orders and tap the order.\n2. Tap Return items.\n3. Choose the items" in first.text
    assert RETURN_EN.url in first.text and "order number" in first.text and "?" in first.text
    assert first.cited_article_ids == ["start-a-return"]
    assert all(d.cited_article_ids == ["start-a-return"] for d in result.drafts)
    assert all(len(d.text) <= MAX_DRAFT_CHARS and d.text.count("\n\n") <= 2 for d in result.drafts)


def test_every_missing_detail_is_asked_for_after_the_steps(drafter):
    hit = _hit("change-delivery-address", "en", ("change_address",), ("Tap Edit address.", "Tap Save."))
    text = "Can I change the delivery address for my order?"
    result = drafter.draft(text, make_triage("en", "change_address", text=text), [hit])
    first = result.drafts[0].text
    assert first.index("1. Tap Edit address.") < first.index("order number") < first.index("new delivery")


def test_an_article_not_tagged_for_the_intent_does_not_answer_the_draft_asks_only(drafter):
    other = _hit("exchange-an-item", "en", ("product_question",), RETURN_STEPS)
    result = drafter.draft("I want to return it", make_triage("en", "return_item"), [other])
    assert all("1. " not in d.text and not d.cited_article_ids for d in result.drafts)
    assert all("order number" in d.text for d in result.drafts)


def test_a_look_up_question_still_asks_for_the_order_number_first(drafter):
    track = _hit("track-your-order", "en", ("order_status",), ("Tap Orders.", "Tap Track package."))
    result = drafter.draft("where is my order?", make_triage("en", "order_status"), [track])
    assert all("http" not in d.text and "order number" in d.text for d in result.drafts)


def test_a_case_for_a_person_is_handed_off_without_steps(drafter):
    text = "I want to return it"
    triage = make_triage("en", "return_item", urgency="critical")
    result = drafter.draft(text, triage, [RETURN_EN])
    assert result.needs_human and all("1. " not in d.text for d in result.drafts)


def test_an_article_in_another_language_is_linked_marked_with_its_language_and_the_draft_stays_spanish(
    drafter,
):
    text = "Quiero devolver la lámpara"
    result = drafter.draft(text, make_triage("es", "return_item", text=text), [RETURN_EN])
    assert result.language == "es"
    first = result.drafts[0].text
    assert f"{RETURN_EN.url} (en inglés)" in first
    assert "número de pedido" in first and "Go to Orders" not in first  # English steps are not pasted
    assert result.drafts[0].cited_article_ids == ["start-a-return"]


def test_a_link_to_an_article_in_another_language_is_marked_in_the_customers_language(drafter):
    es_article = _hit("es-devolver-producto", "es", ("return_item",), ("Vaya a Pedidos.",))
    result = drafter.draft("I want to return my lamp", make_triage("en", "return_item"), [es_article])
    assert f"{es_article.url} (in Spanish)" in result.drafts[0].text


def test_a_language_without_a_marker_marks_the_link_with_the_language_code(drafter):
    sw_article = _hit("sw-kurudisha-bidhaa", "sw", ("return_item",), ("Nenda kwenye Maagizo.",))
    result = drafter.draft("I want to return my lamp", make_triage("en", "return_item"), [sw_article])
    assert f"{sw_article.url} (SW)" in result.drafts[0].text


def test_an_article_named_by_the_caller_gives_the_steps_of_its_body(drafter):
    article = ArticleRead(
        id="start-a-return",
        title="Start a return",
        locale="en",
        intents=["return_item"],
        url="https://help.northwind.example/en/returns/start-a-return",
        summary="Start a return in Orders.",
        updated_at="2025-03-05",
        body="## Return online\n\n1. Go to **Orders**.\n2. Tap **Return items**.\n",
        source="start-a-return.md",
    )
    result = drafter.draft("how do I return this?", make_triage("en", "return_item"), [article])
    assert "1. Go to Orders.\n2. Tap Return items." in result.drafts[0].text


def test_steps_are_the_top_level_items_of_the_first_numbered_list_without_markup():
    body = (
        "Intro.\n\n- a bullet, not a step\n\n## Return online\n\n1. Go to **Orders** and tap the order.\n"
        "2. Pick how to send it back:\n   - **Drop-off**: free label.\n   - **In store**.\n"
        "3. Tap [Confirm](https://x.example).\n\n## Other\n\n1. Not a step of this list.\n"
    )
    assert article_steps(body) == [
        "Go to Orders and tap the order.",
        "Pick how to send it back:",
        "Tap Confirm.",
    ]
    assert article_steps("## Only prose\n\nNo list here.\n") == []


def test_only_whole_steps_that_fit_are_listed():
    steps = ("a" * 50, "b" * 50, "c" * 50)
    assert numbered(steps, 110) == f"1. {'a' * 50}\n2. {'b' * 50}"
    assert numbered(steps, 10) == ""


def test_details_are_read_from_hits_full_articles_and_dicts():
    details = article_details(
        [RETURN_EN, {"article_id": "x", "intents": ["a"], "body": "1. One.\n2. Two.\n"}, object()]
    )
    assert [(d.article_id, d.intents, d.steps) for d in details] == [
        ("start-a-return", ("return_item",), RETURN_STEPS),
        ("x", ("a",), ("One.", "Two.")),
    ]
    assert details[0].answers("return_item") and not details[0].answers("order_status")


def test_the_grounding_of_the_claim_checks_includes_the_steps(drafter):
    # a step's amount ("1 hour") is grounded by the article, so the draft that quotes it is kept
    hit = _hit(
        "reset-password", "en", ("account_access",), ("Tap Reset password. The link works for 1 hour.",)
    )
    result = drafter.draft("I forgot my password", make_triage("en", "account_access"), [hit])
    assert "works for 1 hour" in result.drafts[0].text


def test_self_service_intents_are_known_intents_and_a_stray_one_is_refused():
    slots = SlotResolver.load()
    assert set(slots.book.self_service) <= set(load_taxonomy().names)
    assert slots.self_service("return_item") and not slots.self_service("order_status")
    book = SlotBook(version=1, slots={}, intents={"return_item": []}, self_service=["nope"])
    with pytest.raises(InvalidInput, match="self_service"):
        SlotResolver(book)


def test_suggestions_for_a_triaged_message_carry_the_articles_steps_and_intents(kb):  # noqa: F811
    hits = suggest_for_triage(kb, "track my order in the app", "en", make_triage("en", "order_status"), k=1)
    assert hits[0].article_id == "track"
    assert hits[0].steps == ("Open Orders.", "Tap Track package.") and "order_status" in hits[0].intents
    assert "steps" not in hits[0].model_dump()
