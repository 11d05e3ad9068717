"""Register (formal 'you'), informal markers, dismissive wording and shouting."""

from __future__ import annotations

import pytest
import yaml

from service.tone.checker import ToneChecker
from service.tone.models import Severity, ToneContext
from service.tone.rules import DEFAULT_RULES_PATH


@pytest.fixture(scope="module")
def checker() -> ToneChecker:
    return ToneChecker.from_path()


def spans(checker, text, locale="en-US", rule=None, **ctx) -> list[str]:
    return [
        f.span.text
        for f in checker.check(text, locale, ToneContext(**ctx)).findings
        if rule in (None, f.rule)
    ]


@pytest.mark.parametrize(
    ("locale", "text", "expected"),
    [
        ("de-DE", "Kannst du uns deine Bestellnummer schicken?", ["Kannst", "du", "deine"]),
        ("de-CH", "Wir schicken dir einen neuen Link.", ["dir"]),
        ("fr-FR", "Peux-tu nous envoyer ton numéro ? On t'envoie l'étiquette.", ["tu", "ton", "t'"]),
        ("es-MX", "¿Puedes enviarnos tu número de pedido?", ["Puedes", "tu"]),
        ("pt-PT", "Podes enviar-nos o teu número?", ["Podes", "teu"]),
        ("it-IT", "Ti abbiamo inviato il tuo link.", ["Ti", "tuo"]),
        ("ru-RU", "Можешь прислать номер твоего заказа?", ["Можешь", "твоего"]),
    ],
)
def test_informal_you_is_flagged_where_the_locale_expects_the_formal_form(checker, locale, text, expected):
    result = checker.check(text, locale)
    found = [f for f in result.findings if f.rule == "informal_register"]
    assert [f.span.text for f in found] == expected
    assert all(f.severity is Severity.warn and f.cultures for f in found)


@pytest.mark.parametrize(
    ("locale", "text"),
    [
        (
            "de-DE",
            "Könnten Sie uns bitte Ihre Bestellnummer schicken? Die Lieferung nach Dubai ist kostenlos.",
        ),
        ("fr-FR", "Le ton de notre dernier message n'était pas approprié, veuillez nous excuser."),
        ("es-ES", "¿Puedes enviarnos tu número de pedido?"),  # Spain: informal is the brand default
        ("es-AR", "¿Nos pasás tu número de pedido?"),
        ("es-MX", "¿Le apetece un té? ¿Nos puede enviar su número?"),
        ("pt-BR", "Você pode mandar o número do pedido?"),
        ("en-US", "Can you send us your order number?"),
        ("de-DE", "Thank you, you can track your parcel below."),
    ],
)
def test_formal_or_locale_appropriate_address_is_not_flagged(checker, locale, text):
    assert spans(checker, text, locale, rule="informal_register") == []


def test_informal_markers_are_notes_in_a_relaxed_english_chat(checker):
    result = checker.check("Hey u, ur package is on the way!! lol", "en-US")
    assert [(f.span.text, f.severity) for f in result.findings] == [
        ("Hey", Severity.info),
        ("u", Severity.info),
        ("ur", Severity.info),
        ("!!", Severity.info),
        ("lol", Severity.info),
    ]


def test_informal_markers_are_warnings_in_formal_locales_and_upset_conversations(checker):
    (de,) = checker.check("Hey Herr Müller, Ihre Bestellung ist unterwegs.", "de-DE").findings
    assert (de.rule, de.severity) == ("informal_marker", Severity.warn)
    (en,) = checker.check("omg sorry", "en-US", ToneContext(sentiment="negative")).findings
    assert en.severity is Severity.warn


def test_language_specific_markers_only_apply_to_their_language(checker):
    assert spans(checker, "Ya procesamos tu reembolso.", "es-ES") == []  # 'ya' is Spanish for 'already'
    assert spans(checker, "Ciao! Puoi mandarci il numero?", "it-IT", rule="informal_marker") == ["Ciao"]
    assert spans(checker, "Our store is next to the U2 U-Bahn in the U.S. office.", "en-US") == []


def test_dismissive_phrases_in_several_languages(checker):
    assert spans(checker, "Please calm down, we are on it.") == ["calm down"]
    assert spans(checker, "As I already said, refunds take 5 days.") == ["As I already said"]
    assert spans(checker, "Per my last message, the warranty is one year.") == ["Per my last message"]
    assert spans(checker, "You should have selected express shipping.") == ["You should have selected"]
    assert spans(checker, "Beruhigen Sie sich bitte.", "de-DE") == ["Beruhigen Sie sich"]
    assert spans(checker, "Comme je vous l'ai déjà dit, c'est gratuit.", "fr-FR") == [
        "Comme je vous l'ai déjà dit"
    ]
    assert spans(checker, "Como ya le dije, tarda 5 días.", "es-MX") == ["Como ya le dije"]


def test_neutral_sentences_that_resemble_dismissive_ones_are_not_flagged(checker):
    assert spans(checker, "You should have received an email with the label.") == []
    assert spans(checker, "You should have the option to download the invoice.") == []
    assert spans(checker, "As mentioned in our FAQ, returns are free.") == []
    assert spans(checker, "I can't do anything more from my side, so I have escalated it to billing.") == []
    assert spans(checker, "Our Calm Linen set is back in stock.") == []


def test_no_worries_is_flagged_only_when_the_customer_is_talking_about_money(checker):
    assert spans(checker, "No worries, we'll refund the double charge.", intent="charged_twice") == [
        "No worries"
    ]
    assert spans(checker, "Pas de souci, on regarde.", "fr-FR", intent="refund_status") == ["Pas de souci"]
    assert spans(checker, "No worries, happy to help with sizing!", intent="product_question") == []
    assert spans(checker, "No worries, happy to help with sizing!") == []


def test_capitals_read_as_shouting(checker):
    assert spans(checker, "WE HAVE ALREADY REFUNDED YOUR ORDER.") == ["WE HAVE ALREADY REFUNDED YOUR ORDER"]
    assert spans(checker, "Please DO NOT return the item yet.") == ["DO NOT"]
    assert spans(checker, "IMPORTANT: your card expires soon.") == ["IMPORTANT"]


def test_acronyms_codes_and_brand_names_are_not_shouting(checker):
    text = (
        "Your IBAN was updated; DHL tracking ID JD0146, code NWX-ABCD-EFGH, the NORTHWIND logo, SPRING15 "
        "at checkout."
    )
    assert spans(checker, text) == []


@pytest.mark.parametrize(
    "text",
    [
        'Our charges appear as "NORTHWIND GOODS" on your statement.',
        "Our charges appear as 'NORTHWIND GOODS' on your statement.",
        "Our charges appear as “NORTHWIND GOODS” on your statement.",
        "Sur votre relevé : « NORTHWIND GOODS ».",
        "Auf Ihrer Abrechnung steht „NORTHWIND GOODS“.",
        "Enter `SPRING SALE` at checkout.",
        'Our charges show as **"NORTHWIND GOODS"** in the app.',
    ],
)
def test_capitals_quoted_as_data_are_not_shouting(checker, text):
    assert spans(checker, text, rule="shouting") == []


def test_codes_with_a_star_or_digits_are_not_shouting(checker):
    assert (
        spans(checker, "It can also show as NWG*ORDER or **NWG*ORDER**, ref ORDER#A1B2.", rule="shouting")
        == []
    )
    assert spans(checker, "Use code WINTER SALE25 at checkout.", rule="shouting") == []


@pytest.mark.parametrize(
    ("locale", "text"),
    [
        ("en-US", "For texts or WhatsApp, reply STOP."),
        ("en-US", "Reply **STOP** to any marketing message."),
        ("en-US", "Text HELP to 12345 or send YES to confirm."),
        ("es-MX", "Envíe BAJA al 12345 para no recibir más mensajes."),
        ("de-DE", "Antworten Sie mit STOP auf eine beliebige Nachricht."),
        ("fr-FR", "Répondez STOP pour ne plus recevoir de SMS."),
    ],
)
def test_one_keyword_right_after_reply_or_send_is_not_shouting(checker, locale, text):
    assert spans(checker, text, locale, rule="shouting") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("THIS IS NOT ACCEPTABLE", ["THIS IS NOT ACCEPTABLE"]),
        (
            '"WE HAVE ALREADY REFUNDED YOUR ORDER AND THERE IS NOTHING ELSE WE CAN DO"',
            ["WE HAVE ALREADY REFUNDED YOUR ORDER AND THERE IS NOTHING ELSE WE CAN DO"],
        ),
        ("Please **DO NOT** return it before the label arrives.", ["DO NOT"]),
        ("Please reply NOW.", ["NOW"]),
        ("Reply STOP, and PLEASE READ the terms.", ["PLEASE READ"]),
        ("We DON'T CARE which 'courier' you used.", ["DON'T CARE"]),
    ],
)
def test_real_shouting_is_still_flagged_next_to_quotes_codes_and_keywords(checker, text, expected):
    assert spans(checker, text, rule="shouting") == expected


def test_which_capitals_count_as_data_comes_from_the_rules_file(tmp_path):
    data = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    data["shouting"].update(quotes=[], command_words_after=[])
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    custom = ToneChecker.from_path(path)
    assert spans(custom, 'It shows as "NORTHWIND GOODS".', rule="shouting") == ["NORTHWIND GOODS"]
    assert spans(custom, "Reply STOP to opt out.", rule="shouting") == ["STOP"]
