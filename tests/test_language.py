"""Language detection: the message decides when it can, then the customer's history, the locale, the
default."""

from __future__ import annotations

import pytest

from service.triage.language import LanguageDetector, primary_subtag


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector(default_locale="en-US")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("¿Dónde está mi pedido? Lo necesito para mañana", "es"),
        ("Mein Paket ist immer noch nicht angekommen", "de"),
        ("ma commande n'est pas arrivée, pouvez-vous vérifier ?", "fr"),
        ("meu pedido não chegou ainda, podem verificar?", "pt"),
        ("where is my order? it was supposed to arrive yesterday", "en"),
        ("Ik wil mijn bestelling annuleren alstublieft", "nl"),
    ],
)
def test_a_real_sentence_is_decided_by_its_text(detector, text, code):
    lang = detector.detect(text)
    assert (lang.code, lang.source) == (code, "text")
    assert lang.confidence >= 0.8


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("hola", "es"),
        ("danke!", "de"),
        ("merci beaucoup", "fr"),
        ("obrigado", "pt"),
        ("thanks", "en"),
        ("ciao", "it"),
        ("Di mana pesanan saya?", "id"),  # langdetect alone says Tagalog
    ],
)
def test_chat_length_messages_are_decided_by_unmistakable_words(detector, text, code):
    # langdetect alone calls `hola` Welsh; the word vote does not
    assert detector.detect(text, locale="ja-JP").code == code


def test_a_sentence_full_of_one_languages_common_words_skips_the_statistical_detector(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(LanguageDetector, "_langdetect", staticmethod(lambda text: calls.append(text) or {}))
    detector = LanguageDetector()
    lang = detector.detect("I have not received my order and it was due on Monday")
    assert (lang.code, lang.source) == ("en", "text") and lang.confidence >= 0.8
    assert calls == []
    # a sentence whose words do not settle it still goes to langdetect
    detector.detect("Paket NW-1234 Lieferung Verspätung Rückerstattung")
    assert len(calls) == 1


def test_spanish_without_accents_is_not_mistaken_for_portuguese(detector):
    assert detector.detect("donde esta mi pedido").code == "es"


@pytest.mark.parametrize("text", ["我的订单在哪里", "谢谢"])
def test_chinese_variants_map_to_zh(detector, text):
    assert detector.detect(text).code == "zh"


@pytest.mark.parametrize("text", ["👍", "ok", "12345", "!!", "😡😡😡", "#NW-48213"])
def test_text_without_usable_words_falls_back_to_the_customers_history(detector, text):
    lang = detector.detect(
        text, history=["Hola, mi pedido no ha llegado todavía", "¿alguien me puede ayudar?"], locale="fr-FR"
    )
    assert (lang.code, lang.source) == ("es", "history")


def test_without_history_the_locale_hint_decides(detector):
    lang = detector.detect("👍", history=[], locale="pt-BR")
    assert (lang.code, lang.source, lang.confidence) == ("pt", "locale", 0.6)


def test_unusable_history_falls_through_to_the_locale(detector):
    lang = detector.detect("ok", history=["👍", "123"], locale="de_AT")
    assert (lang.code, lang.source) == ("de", "locale")


def test_without_any_hint_the_default_locale_decides(detector):
    lang = detector.detect("👍")
    assert (lang.code, lang.source) == ("en", "default")
    assert lang.confidence < 0.5


def test_an_ambiguous_short_text_uses_the_locale_to_break_the_tie(detector):
    # `hallo` is German and Dutch; `pedido` Spanish and Portuguese
    assert detector.detect("hallo", locale="nl-BE").code == "nl"
    assert detector.detect("pedido", locale="pt-BR").code == "pt"


def test_detection_is_deterministic(detector):
    text = "necesito ayuda urgente con la cuenta"
    assert len({detector.detect(text).model_dump_json() for _ in range(5)}) == 1


@pytest.mark.parametrize(
    ("locale", "code"),
    [
        ("es-MX", "es"),
        ("pt_BR", "pt"),
        ("zh-Hant-TW", "zh"),
        ("EN", "en"),
        ("!!", None),
        ("", None),
        (None, None),
    ],
)
def test_primary_subtag_of_a_locale(locale, code):
    assert primary_subtag(locale) == code
