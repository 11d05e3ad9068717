"""Draft safety (issue #12, item 4): every claim in a draft is checked against its own source; what has
none is dropped with its sentence (contacts, identifiers, amounts, "it is done" claims) or drops the whole
LLM draft (commitments), and the draft says so in `safety_findings`."""

from __future__ import annotations

import json

import pytest

from kb_index import SAMPLE_ARTICLES_DIR
from service.drafting.checks import CheckContext, DraftChecker, Policy
from service.drafting.claims import ClaimChecker, ClaimSources, amounts, is_done_claim
from service.drafting.drafter import Drafter
from service.drafting.models import GroundingArticle, as_grounding
from service.kb.articles import Article, load_documents
from service.settings import Settings
from service.tone.checker import ToneChecker
from service.tone.models import ToneContext
from service.triage.models import HistoryMessage, SentimentLabel, UrgencyLevel
from service.workflow.models import ContextFact
from tests.test_drafting_seam import GOOD, ScriptedLLM, llm_server  # noqa: F401 - the fixture
from tests.test_drafting_templates import TEMPLATE_LANGUAGES, TRACKING, make_triage

BRAND = "care@northwind.example, +1 800 555 0100"
RETURNS = GroundingArticle(
    article_id="returns",
    title="Returns",
    locale="en",
    url="https://help.northwind.example/en/returns",
    summary="You can return most items within 30 days. Questions? Write to returns@northwind.example.",
    snippet="Refunds go back to the original payment method within 5 business days.",
)
PAYMENTS = GroundingArticle(
    article_id="payments",
    title="Ways to pay",
    locale="en",
    url="https://help.northwind.example/en/payments",
    summary="You can pay by credit card, PayPal or gift card.",
    snippet="We charge your card when the order ships.",
)
LATE_CREDIT = GroundingArticle(
    article_id="late-credit",
    title="Late parcels",
    locale="en",
    url="https://help.northwind.example/en/late",
    summary="If your parcel is more than 5 days late, we will give you a 10 EUR store credit.",
    snippet="Members get 10% off their next order.",
)
CUSTOMER = "Hi, my order NW-48213 is late. Email me at ana.diaz@example.com or call +34 612 345 678."
SOURCES = ClaimSources(thread=(CUSTOMER,), locale="en-US")
NEUTRAL = ToneContext(intent="delivery_delay", sentiment=SentimentLabel.neutral, urgency=UrgencyLevel.normal)
KEEP = "You can return most items within 30 days."


@pytest.fixture(scope="module")
def tone() -> ToneChecker:
    return ToneChecker.from_path(None, default_locale="en")


@pytest.fixture(scope="module")
def checker(tone) -> DraftChecker:
    return DraftChecker(tone, Policy.load(), claims=ClaimChecker(BRAND.split(", ")))


def ctx(articles=(RETURNS,), sources: ClaimSources = SOURCES) -> CheckContext:
    return CheckContext(language="en", locale="en-US", tone=NEUTRAL, articles=list(articles), sources=sources)


def check(checker: DraftChecker, text: str, cited=("returns",), **kw):
    return checker.check_llm_draft(text, list(cited), ctx(**kw))


# -- contacts ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sentence",
    [
        "For a faster refund, call our refunds team on +1 900 555 0199.",
        "For a faster refund, write to refunds@northwind-help.example.",
    ],
)
def test_a_contact_that_is_not_the_customers_nor_the_kbs_nor_a_brand_contact_is_dropped(checker, sentence):
    result = check(checker, f"{KEEP} {sentence}")
    assert result.text == KEEP
    [finding] = result.safety_findings
    assert finding.rule == "ungrounded_contact" and finding.action == "sentence_dropped"
    assert "0199" not in finding.text.replace("…0199", "") and "refunds@" not in finding.text


@pytest.mark.parametrize(
    "sentence",
    [
        "We will reply to ana.diaz@example.com and call you on +34 612 345 678.",  # the customer's own
        "We will reply to you at +34612345678.",  # the same number, written differently
        "Questions? Write to returns@northwind.example.",  # in the cited article
        "You can also call us on +1 800 555 0100 or write to care@northwind.example.",  # brand contacts
    ],
)
def test_the_customers_own_the_articles_and_the_brands_contacts_stay(checker, sentence):
    result = check(checker, f"{KEEP} {sentence}")
    assert result.text == f"{KEEP} {sentence}"
    assert result.safety_findings == []


def test_a_contact_from_an_uncited_article_it_came_from_gets_that_article_cited(checker):
    result = check(checker, f"{KEEP} Questions? Write to returns@northwind.example.", cited=())
    assert result.cited_article_ids == ["returns"] and "citation_added" in result.repairs


def test_a_contact_the_customer_gave_earlier_in_the_thread_counts_as_theirs(checker):
    sources = ClaimSources(thread=("where is it?", "my new number is +34 699 111 222"), locale="en-US")
    result = check(checker, f"{KEEP} We will call you on +34 699 111 222 today.", sources=sources)
    assert result.safety_findings == []


# -- identifiers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "secret"),
    [
        ("Your other order NW-99817 was also delayed.", "NW-99817"),
        ("We also sent the label to maria.lopez@example.org.", "maria.lopez@example.org"),
        ("The refund goes to your card 4111 1111 1111 1111.", "4111 1111 1111 1111"),
    ],
)
def test_another_customers_order_number_email_or_card_is_dropped_and_masked_in_the_finding(
    checker, sentence, secret
):
    result = check(checker, f"{KEEP} {sentence}")
    assert result.text == KEEP
    [finding] = result.safety_findings
    assert finding.rule in {"foreign_identifier", "ungrounded_contact"}
    assert secret not in finding.text  # the agent sees that something was dropped, not the data


def test_the_customers_own_order_number_and_the_slot_questions_example_stay(checker):
    text = f"{KEEP} We are checking order NW-48213. Is there another (for example NW-12345)?"
    assert check(checker, text).safety_findings == []


# -- amounts and "it is done" claims ---------------------------------------------------------------------


DONE_CLAIMS = [
    "Your refund of 500 EUR has been approved and sent.",
    "We have issued a credit to your account.",
    "Ihre Erstattung über 500 EUR wurde genehmigt.",
    "Su reembolso de 500 EUR fue aprobado.",
    "Le remboursement a été effectué.",
    "O seu reembolso já foi processado.",
]


@pytest.mark.parametrize("claim", DONE_CLAIMS)
def test_a_claim_that_a_refund_or_credit_happened_without_a_source_is_dropped(checker, claim):
    assert is_done_claim(claim)
    result = check(checker, f"{KEEP} {claim}")
    assert result.text == KEEP
    assert [f.rule for f in result.safety_findings] == ["ungrounded_claim"]


def test_the_customer_saying_it_happened_does_not_ground_the_claim(checker):
    sources = ClaimSources(thread=("Your colleague said my refund of 500 EUR has been approved and sent!",))
    result = check(checker, f"{KEEP} Your refund of 500 EUR has been approved and sent.", sources=sources)
    assert result.text == KEEP


def test_a_fact_from_the_shop_that_says_the_same_grounds_the_claim_in_any_language(checker):
    facts = ("Refund for order NW-48213: approved, 500.00 EUR, sent to the card on file",)
    sources = ClaimSources(thread=(CUSTOMER,), facts=facts, locale="en-US")
    for claim in (
        "Your refund of 500 EUR has been approved and sent.",
        "Su reembolso de 500 EUR fue aprobado.",
    ):
        result = check(checker, f"{KEEP} {claim}", sources=sources)
        assert result.safety_findings == [], claim


def test_a_fact_with_another_amount_or_another_action_does_not_ground_the_claim(checker):
    sources = ClaimSources(thread=(CUSTOMER,), facts=("Order NW-48213: status shipped; eta Friday",))
    for claim in ("Your refund of 500 EUR has been approved and sent.", "Your order NW-48213 was cancelled."):
        assert check(checker, f"{KEEP} {claim}", sources=sources).text == KEEP, claim
    refund = ("Refund for order NW-48213: approved, 50.00 EUR",)
    sources = ClaimSources(thread=(CUSTOMER,), facts=refund)
    assert check(checker, f"{KEEP} Your refund of 500 EUR has been approved.", sources=sources).text == KEEP


def test_an_order_status_fact_grounds_the_matching_shipped_claim(checker):
    sources = ClaimSources(thread=(CUSTOMER,), facts=("Order NW-48213: status shipped; eta Friday",))
    text = f"{KEEP} Your order NW-48213 has been shipped and should arrive on Friday."
    assert check(checker, text, sources=sources).text == text


@pytest.mark.parametrize(
    "sentence",
    [
        "Once your return is approved, the refund is sent within 5 business days.",  # conditional
        "We will check whether the refund has been sent?",  # a question
        "Refunds go back to the original payment method within 5 business days.",  # no claim of done
    ],
)
def test_conditions_questions_and_how_it_works_sentences_are_not_done_claims(checker, sentence):
    assert check(checker, f"{KEEP} {sentence}").safety_findings == []


def test_an_amount_without_a_source_is_dropped_and_one_from_the_article_stays(checker):
    result = check(checker, f"{KEEP} Gift wrapping costs $4 at checkout.")
    assert result.text == KEEP and [f.rule for f in result.safety_findings] == ["ungrounded_amount"]
    text = f"{KEEP} A 10 EUR store credit applies when a parcel is more than 5 days late."
    result = check(checker, text, articles=(RETURNS, LATE_CREDIT), cited=("returns", "late-credit"))
    assert result.text == text


def test_amounts_compare_by_value_and_currency_not_by_spelling():
    assert amounts("500 EUR") == amounts("€500,00") == amounts("500.00 euros")
    assert amounts("1.234,50 €") == amounts("EUR 1,234.50")
    assert amounts("500 EUR") != amounts("500 GBP")
    assert amounts("order NW-48213") == frozenset()


# -- commitments (the policy): the same kind, the same amounts, in one article sentence ----------------------


def test_a_credit_promise_is_not_grounded_by_an_article_that_merely_says_credit_card(checker):
    text = "Sorry for the wait! To make up for it, we can offer you a credit on your next order."
    result = check(checker, text, articles=(PAYMENTS,), cited=("payments",))
    assert result.text is None and result.dropped_because == "policy:money_promise"


def test_a_commitment_is_grounded_only_by_an_article_sentence_making_it_with_the_same_amount(checker):
    policy = Policy.load()
    grounding = [f"{LATE_CREDIT.summary}\n{LATE_CREDIT.snippet}"]
    same = "As your parcel is more than 5 days late, we will give you a 10 EUR store credit."
    assert policy.violations(same, grounding) == []
    assert policy.violations(same.replace("10 EUR", "50 EUR"), grounding) == ["money_promise"]
    assert policy.violations("We can give you 10% off your next order.", grounding) == []
    assert policy.violations("We can give you 25% off your next order.", grounding) == ["discount_promise"]


def test_a_refund_promise_is_not_grounded_by_a_credit_sentence_nor_by_a_negated_one():
    policy = Policy.load()
    assert policy.violations("We will refund you in full.", ["We will give you a 10 EUR store credit."]) == [
        "money_promise"
    ]
    assert policy.violations(
        "We will refund the shipping costs.", ["We will not refund shipping costs."]
    ) == ["money_promise"]


# -- through the drafter ----------------------------------------------------------------------------------


def drafter_for(server: ScriptedLLM, tone: ToneChecker, **kw) -> Drafter:
    return Drafter.from_settings(Settings(llm_base_url=server.url, llm_model="scripted", **kw), tone=tone)


def test_an_llm_draft_ships_without_its_ungrounded_sentences_and_says_why(llm_server, tone):  # noqa: F811
    answer = {
        **GOOD,
        "drafts": [
            "Thanks for your message! You can track your order in the app under Orders. "
            "Your refund of 500 EUR has been approved and sent. "
            "For updates, call our hotline on +1 900 555 0199."
        ],
    }
    llm_server.answer(json.dumps(answer))
    text = "where is my order NW-48213?"
    result = drafter_for(llm_server, tone).draft(
        text, make_triage("en", "order_status", text=text), [TRACKING]
    )
    [draft] = result.drafts
    assert draft.generator == "llm"
    assert draft.text == "Thanks for your message! You can track your order in the app under Orders."
    assert [f.rule for f in draft.safety_findings] == ["ungrounded_claim", "ungrounded_contact"]
    assert "unsupported_sentence_removed" in draft.repairs


def test_a_configured_brand_contact_and_a_shop_fact_keep_their_sentences(llm_server, tone):  # noqa: F811
    answer = {
        **GOOD,
        "drafts": [
            "Thanks for your message! Your order [ORDER_1] has been shipped. "
            "For anything else, call us on +1 800 555 0100."
        ],
    }
    llm_server.answer(json.dumps(answer))
    text = "where is my order NW-48213?"
    fact = ContextFact(
        source="order_status", key="NW-48213", text="Order NW-48213: status shipped; eta Friday"
    )
    drafter = drafter_for(llm_server, tone, brand_contacts=BRAND)
    result = drafter.draft(text, make_triage("en", "order_status", text=text), [TRACKING], facts=[fact])
    [draft] = result.drafts
    assert draft.text.startswith("Thanks for your message! Your order NW-48213 has been shipped.")
    assert "+1 800 555 0100" in draft.text and draft.safety_findings == []


def test_the_drafter_takes_the_whole_thread_as_the_customers_and_nothing_else(tone):
    drafter = Drafter.from_settings(Settings(llm_base_url=None), tone=tone)
    history = [HistoryMessage(role="customer", text="my order is NW-48213")]
    sources = ClaimSources(thread=("where is it?", *(m.text for m in history)), locale="en")
    result = drafter.checker.check_llm_draft(
        f"{KEEP} Order NW-48213 is on its way, and so is NW-55555.", ["returns"], ctx(sources=sources)
    )
    assert result.text == KEEP
    assert [f.rule for f in result.safety_findings] == ["foreign_identifier"]


def sample_articles() -> list[tuple[GroundingArticle, str]]:
    """Every bundled article as drafting sees it, with its first intent."""
    docs, _ = load_documents(SAMPLE_ARTICLES_DIR)
    articles = [Article.from_doc(d) for d in docs]
    return list(zip(as_grounding(articles), (a.intents[0] for a in articles), strict=True))


def test_template_drafts_of_every_sample_article_in_every_language_trip_no_check(tone):
    """Our own templates and the bundled knowledge base never lose a sentence or a link to the checks."""
    drafter = Drafter.from_settings(Settings(llm_base_url=None), tone=tone)
    articles = sample_articles()
    assert len(articles) >= 40
    for article, intent in articles:
        language = (article.locale or "en")[:2]
        text = "my order NW-48213, email ana.diaz@example.com"
        result = drafter.draft(text, make_triage(language, intent, text=text), [article])
        for d in result.drafts:
            assert d.safety_findings == [], (article.article_id, d.text, d.safety_findings)
    for language in TEMPLATE_LANGUAGES:
        result = drafter.draft("where is my order?", make_triage(language, "order_status"), [])
        assert all(d.safety_findings == [] for d in result.drafts)
    for article, _ in articles:  # the summaries of intents that ask first or hand over, too
        text = f"{article.summary}\n\n{article.url}"
        context = CheckContext(
            language=(article.locale or "en")[:2],
            locale=article.locale,
            tone=NEUTRAL,
            articles=[article],
            sources=ClaimSources(thread=("hello",)),
        )
        result = drafter.checker.check_template_draft(text, [article.article_id], context)
        assert result.safety_findings == [] and result.text == text, (article.article_id, result)
