"""Entities with character spans, and the reversible redaction built on them."""

from __future__ import annotations

import pytest

from service.triage.entities import extract_entities, luhn_valid, redact, restore
from service.triage.models import Entity


def _found(text: str, locale: str | None = None) -> list[tuple[str, str]]:
    return [(e.type, e.value) for e in extract_entities(text, locale)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("where is my order #NW-48213?", "NW-48213"),
        ("Hola, mi pedido #A12345 no ha llegado", "A12345"),
        ("order 123456 still not here", "123456"),
        ("order number: 998877", "998877"),
        ("pedido 98765 por favor", "98765"),
        ("pedido nº 98765", "98765"),
        ("Bestellung Nr. 5521 fehlt", "5521"),
        ("commande n° 12345", "12345"),
        ("numéro de commande 778812", "778812"),
        ("número do pedido 123456", "123456"),
        ("NW-55102 never arrived", "NW-55102"),
    ],
)
def test_order_numbers_in_several_languages(text, value):
    assert _found(text) == [("order_number", value)]


@pytest.mark.parametrize("text", ["I ordered 2 lamps", "my order from 2023", "hice una compra de 2500 pesos"])
def test_quantities_years_and_amounts_are_not_order_numbers(text):
    assert _found(text) == []


def test_spans_point_at_the_value_in_the_text():
    text = "Hi, order #NW-48213, mail ana.perez+shop@mail.example.com or call +34 612 345 678"
    entities = extract_entities(text)
    assert [e.type for e in entities] == ["order_number", "email", "phone"]
    for e in entities:
        assert text[e.start : e.end] == e.value
    assert entities[1].value == "ana.perez+shop@mail.example.com"


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("call me on +34 612 345 678 please", None, "+34 612 345 678"),
        ("my number is +1 (415) 867-5309", None, "+1 (415) 867-5309"),
        ("+49 30 12345678", None, "+49 30 12345678"),
        ("ring 0044 20 7946 0958", "de-DE", "0044 20 7946 0958"),
        ("(415) 867-5309", "en-US", "(415) 867-5309"),
    ],
)
def test_phone_numbers_in_international_and_local_formats(text, locale, value):
    assert _found(text, locale) == [("phone", value)]


def test_a_national_number_needs_a_region_from_the_locale():
    assert _found("(415) 867-5309") == []


def test_a_luhn_valid_card_is_a_card_and_nothing_else():
    text = "my card 4111 1111 1111 1111 was charged"
    assert _found(text, "en-US") == [("card_number", "4111 1111 1111 1111")]
    assert _found("4111111111111111", "en-US") == [("card_number", "4111111111111111")]


def test_a_card_like_number_failing_luhn_is_a_card_only_next_to_a_card_word():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert all(t != "card_number" for t, _ in _found("ref 4111 1111 1111 1112 was charged", "en-US"))
    # issue #12: a mistyped card number the customer calls a card still is one (and never reaches an LLM)
    assert _found("card 4111 1111 1111 1112 was charged", "en-US") == [("card_number", "4111 1111 1111 1112")]


def test_entities_never_overlap():
    text = "order #NW-48213 card 5555-5555-5555-4444 tel +44 20 7946 0958 bob@example.org"
    entities = extract_entities(text, "en-GB")
    for a, b in zip(entities, entities[1:], strict=False):
        assert a.end <= b.start
    assert {e.type for e in entities} == {"order_number", "card_number", "phone", "email"}


def test_redact_uses_stable_numbered_placeholders():
    text = "mail a@b.io or c@d.io; again a@b.io. card 4111 1111 1111 1111"
    redacted, mapping = redact(text, extract_entities(text))
    assert redacted == "mail [EMAIL_1] or [EMAIL_2]; again [EMAIL_1]. card [CARD_1]"
    assert mapping == {"[EMAIL_1]": "a@b.io", "[EMAIL_2]": "c@d.io", "[CARD_1]": "4111 1111 1111 1111"}


def test_redact_then_restore_round_trips():
    text = "Pedido #A12345: llamar al +52 55 1234 5678 o escribir a cliente@correo.mx 🙏"
    redacted, mapping = redact(text, extract_entities(text, "es-MX"))
    assert "cliente@correo.mx" not in redacted and "5678" not in redacted
    assert restore(redacted, mapping) == text


def test_restore_puts_values_into_a_rewritten_text():
    mapping = {"[ORDER_1]": "NW-48213", "[EMAIL_1]": "a@b.io"}
    assert (
        restore("We found [ORDER_1]; confirmation goes to [EMAIL_1].", mapping)
        == "We found NW-48213; confirmation goes to a@b.io."
    )


def test_redact_ignores_stale_or_overlapping_entities():
    text = "mail a@b.io"
    stale = Entity(type="email", value="x@y.io", start=5, end=11)
    assert redact(text, [stale]) == (text, {})
