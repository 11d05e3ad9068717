"""Urgency levels and their reasons: intent priors, multilingual cues, repeated contact, anger, no-rush."""

from __future__ import annotations

import pytest

from service.triage.models import (
    HistoryMessage,
    Intent,
    IntentAlternative,
    Sentiment,
    SentimentLabel,
    UrgencyLevel,
)
from service.triage.taxonomy import load_taxonomy
from service.triage.urgency import UrgencyScorer

LOW, NORMAL, HIGH, CRITICAL = UrgencyLevel.low, UrgencyLevel.normal, UrgencyLevel.high, UrgencyLevel.critical


@pytest.fixture(scope="module")
def scorer() -> UrgencyScorer:
    return UrgencyScorer.from_taxonomy(load_taxonomy())


def intent(name: str, confidence: float = 0.9) -> Intent:
    return Intent(
        name=name, confidence=confidence, alternatives=[IntentAlternative(name=name, confidence=confidence)]
    )


def angry(score: float = -0.8) -> Sentiment:
    return Sentiment(label=SentimentLabel.negative, score=score)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("someone hacked my account and changed the email", "account security: 'hacked'"),
        ("hi, calm question: there are 3 purchases on my statement that aren't mine", "money at risk"),
        ("my card was stolen, please block it", "lost or stolen"),
        ("the heater caught fire last night", "safety"),
        ("if this isn't refunded I'm handing it to my lawyer", "legal threat: 'lawyer'"),
        ("voy a poner una demanda, ya hablé con mi abogado", "legal threat"),
        ("Mein Anwalt wird sich bei Ihnen melden", "legal threat: 'anwalt'"),
        ("je vais contacter un avocat", "legal threat: 'avocat'"),
        ("vou acionar meu advogado", "legal threat: 'advogado'"),
        ("Es wurde Geld abgebucht, das ist Betrug", "money at risk: 'betrug'"),
        ("me robaron la tarjeta", "lost or stolen"),
        ("no rush, but there's a charge I didn't make on my card", "money at risk"),
    ],
)
def test_security_money_safety_and_legal_threats_are_critical(scorer, text, reason):
    result = scorer.assess(text, intent=intent("order_status", 0.5))
    assert result.level == CRITICAL
    assert any(r.startswith(reason) for r in result.reasons), result.reasons
    assert result.score >= 0.8


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("URGENT: need the invoice today", "explicit urgency: 'urgent'"),
        ("need this delivered by tonight, it's a birthday gift", "deadline: 'tonight'"),
        ("lo necesito hoy sin falta", "deadline: 'hoy'"),
        ("ich brauche die Lieferung heute", "deadline: 'heute'"),
        ("j'en ai besoin aujourd'hui", "deadline: 'aujourdhui'"),
        ("preciso disso hoje", "deadline: 'hoje'"),
        ("my payment keeps getting declined", "customer blocked"),
        ("no puedo entrar a mi cuenta", "customer blocked"),
        ("order was supposed to arrive last week and still nothing", "order overdue"),
        ("I want to speak to a manager", "escalation: 'manager'"),
        ("third time I'm writing about this", "repeated contact: 'third time'"),
        ("Ich schreibe zum dritten Mal", "repeated contact"),
    ],
)
def test_blocked_deadline_overdue_escalation_and_explicit_urgency_are_high(scorer, text, reason):
    result = scorer.assess(text, intent=intent("order_status", 0.9))
    assert result.level == HIGH
    assert any(r.startswith(reason) for r in result.reasons), result.reasons


def test_an_ordinary_request_follows_its_intents_default(scorer):
    result = scorer.assess("can I change the delivery address?", intent=intent("change_address"))
    assert result.level == NORMAL
    assert result.reasons == ["intent change_address: normal by default (confidence 0.90)"]


def test_a_confident_low_intent_is_low(scorer):
    assert scorer.assess("do you sell bamboo boards?", intent=intent("stock_availability")).level == LOW


def test_critical_intent_priors_need_confidence(scorer):
    sure = scorer.assess("something odd with my account", intent=intent("hacked_account", 0.95))
    unsure = scorer.assess("something odd with my account", intent=intent("hacked_account", 0.5))
    assert sure.level == CRITICAL
    assert unsure.level in (NORMAL, HIGH)


def test_a_time_word_alone_is_not_a_deadline(scorer):
    assert (
        scorer.assess("ordered today, when does it usually ship?", intent=intent("order_status")).level
        == NORMAL
    )
    assert (
        scorer.assess("hoy pedí una lámpara, ¿cuándo la envían?", intent=intent("order_status")).level
        == NORMAL
    )


def test_repeated_customer_messages_without_a_reply_make_it_high(scorer):
    history = [
        HistoryMessage(role="customer", text="where is my order 55120?"),
        HistoryMessage(role="customer", text="hi, any news?"),
    ]
    result = scorer.assess("hello??", intent=intent("greeting"), history=history)
    assert result.level == HIGH
    assert "repeated contact: 3 customer messages in a row without a reply" in result.reasons


def test_an_answered_thread_is_not_repeated_contact(scorer):
    history = [
        HistoryMessage(role="customer", text="where is my order?"),
        HistoryMessage(role="customer", text="hello?"),
        HistoryMessage(role="agent", text="It ships tomorrow!"),
    ]
    assert scorer.assess("ok thanks", intent=intent("thanks"), history=history).level == LOW


def test_strong_anger_escalates_a_real_problem(scorer):
    result = scorer.assess(
        "3 weeks and no package, absolutely furious", intent=intent("delivery_delay"), sentiment=angry()
    )
    assert result.level == HIGH
    assert "strong negative sentiment (-0.80)" in result.reasons


def test_anger_about_trivia_does_not_make_it_urgent(scorer):
    result = scorer.assess(
        "your newsletter is SO annoying, stop emailing me!!", intent=intent("unsubscribe"), sentiment=angry()
    )
    assert result.level == LOW


def test_calm_words_do_not_hide_fraud(scorer):
    result = scorer.assess(
        "hello, just noticed two charges I didn't make on my visa, no rush",
        intent=intent("unauthorized_charge", 0.6),
        sentiment=Sentiment(label="neutral", score=0.0),
    )
    assert result.level == CRITICAL


@pytest.mark.parametrize(
    "text",
    [
        "quick question, not urgent: do the cushions come with covers?",
        "no es urgente, ¿tienen la mesa en blanco?",
        "c'est pas urgent",
    ],
)
def test_explicit_no_rush_lowers_and_negated_urgency_does_not_raise(scorer, text):
    result = scorer.assess(text, intent=intent("product_question", 0.5))
    assert result.level == LOW
    assert not any(r.startswith("explicit urgency") for r in result.reasons)


def test_low_stakes_topics_decide_when_the_classifier_is_unsure(scorer):
    oos = Intent(
        name="out_of_scope",
        confidence=0.9,
        out_of_scope=True,
        alternatives=[IntentAlternative(name="complaint", confidence=0.05)],
    )
    assert scorer.assess("Gibt es das Kissen auch in grau?", intent=oos).level == LOW
    assert scorer.assess("muchas gracias por la ayuda 🙏", intent=oos).level == LOW
    # ...but not when the message is about a real order
    assert scorer.assess("gracias, pero mi pedido no ha llegado", intent=oos).level == NORMAL


def test_emoji_only_messages_are_low_unless_the_thread_says_otherwise(scorer):
    assert scorer.assess("👍", intent=None).level == LOW


@pytest.mark.parametrize(
    "text",
    [
        "it doesn't hurt to ask: any discounts?",
        "do you sell fire pits?",
        "I saw on twitter you have a sale",
        "they got in touch with me yesterday",
        "I received an item I didn't order",
        "no one got hurt, luckily",
    ],
)
def test_everyday_phrases_do_not_trigger_critical_or_high_cues(scorer, text):
    result = scorer.assess(text, intent=None)
    assert result.level in (LOW, NORMAL), result.reasons


def test_score_lies_in_the_band_of_its_level(scorer):
    bands = {LOW: (0, 0.25), NORMAL: (0.25, 0.5), HIGH: (0.5, 0.8), CRITICAL: (0.8, 1.01)}
    for text in [
        "thanks!",
        "where is my order?",
        "URGENT asap today!!",
        "hacked, fraud, lawyer, police, fire",
    ]:
        result = scorer.assess(text, intent=intent("order_status", 0.7))
        lo, hi = bands[result.level]
        assert lo <= result.score < hi


def test_without_an_intent_the_cues_still_work(scorer):
    assert scorer.assess("mon compte a été piraté", intent=None).level == CRITICAL
    assert scorer.assess("where is my order?", intent=None).level == NORMAL


OUT_OF_SCOPE = Intent(
    name="out_of_scope",
    confidence=0.9,
    out_of_scope=True,
    alternatives=[IntentAlternative(name="product_question", confidence=0.05)],
)


@pytest.mark.parametrize(
    "text",
    [
        "The app says I made a cash withdrawal even though I didn't.",
        "There is a payment on my account that I don't remember making",
        "Someone has withdrawn money from my account a few hours ago",
        "Could you please put a freeze on my card?",
        "I need to dispute a direct debit",
        "I misplaced my wallet on the train",
        "someone took my phone at the bar, what do I do",
        "I see money go out that I didn't withdraw.",
        "hay un cargo en mi tarjeta y no recuerdo haber comprado nada",
        "alguien sacó dinero de mi cuenta anoche",
        "da ist eine Abbuchung, ich kann mich nicht daran erinnern",
        "jemand hat gestern von meinem konto 300 euro abgehoben",
        "il y a un paiement sur ma carte, je ne me souviens pas de l'avoir fait",
        "quelqu'un a retiré 200 euros sur mon compte",
        "tem uma compra no cartão e não me lembro de ter feito",
        "alguém sacou dinheiro da minha conta",
    ],
)
def test_money_at_risk_phrased_in_other_words_is_critical(scorer, text):
    # phrasings from customers outside our own sets (Banking77 style); the intent classifier is unsure of them
    result = scorer.assess(text, intent=OUT_OF_SCOPE)
    assert result.level == CRITICAL, result.reasons


@pytest.mark.parametrize(
    "text", ["I found my lost card this morning, can I use it again?", "The ATM took my card!"]
)
def test_a_found_card_or_a_card_kept_by_an_atm_is_not_critical(scorer, text):
    assert scorer.assess(text, intent=OUT_OF_SCOPE).level is not CRITICAL


@pytest.mark.parametrize(
    "text",
    [
        "What currencies do you support?",
        "Hi, how old do I have to be to sign up?",
        "¿Qué tarjetas ofrecen?",
        "Wie viele Karten kann ich haben?",
        "Quels pays acceptez-vous ?",
        "Quais moedas vocês aceitam?",
    ],
)
def test_a_general_question_without_a_problem_is_low(scorer, text):
    assert scorer.assess(text, intent=OUT_OF_SCOPE).level == LOW


@pytest.mark.parametrize(
    "text",
    [
        "How can I unblock my PIN?",
        "Is there a reason my transfer was declined?",
        "What do I do if there is a debit that is not correct?",
        "¿Por qué mi pago fue rechazado?",
        "Wie entsperre ich meine PIN, sie ist gesperrt?",
    ],
)
def test_a_question_about_a_problem_is_not_low(scorer, text):
    assert scorer.assess(text, intent=OUT_OF_SCOPE).level is not LOW
