"""Tone rules added in #15 (honorifics in ja/ko, formality in tr/pl/nl, 👌 in Japan): each fires on a bad
brand reply and stays quiet on a good one, and each names its source."""

from __future__ import annotations

import pytest

from service.tone.checker import ToneChecker
from service.tone.rules import load_rules

NEW_RULES = {
    "ja_casual_address",
    "ja_plain_form",
    "ko_banmal",
    "ko_second_person",
    "ko_object_honorific",
    "ok_hand_money",
}

# (rule, locale, bad reply, good reply) — replies written for this test.
CASES = [
    (
        "ja_casual_address",
        "ja-JP",
        "あなたのご注文は本日発送いたしました。",
        "お客様のご注文は本日発送いたしました。",
    ),
    ("ja_casual_address", "ja-JP", "お客さんの荷物は明日届きます。", "お客様のお荷物は明日届きます。"),
    ("ja_plain_form", "ja-JP", "ご注文の商品は明日届くよね。", "ご注文の商品は明日お届けします。"),
    ("ja_plain_form", "ja-JP", "返金の手続きをした。", "返金の手続きをいたしました。"),
    ("ja_plain_form", "ja-JP", "連絡ありがとう！", "ご連絡ありがとうございます！"),
    ("ko_banmal", "ko-KR", "주문하신 상품은 내일 도착해.", "주문하신 상품은 내일 도착합니다."),
    ("ko_banmal", "ko-KR", "환불 처리했어!", "환불 처리해 드렸어요!"),
    ("ko_second_person", "ko-KR", "당신의 계정은 안전합니다.", "고객님의 계정은 안전합니다."),
    (
        "ko_second_person",
        "ko-KR",
        "너는 내일 상품을 받게 됩니다.",
        "고객님께서는 너무 걱정하지 않으셔도 됩니다.",
    ),
    ("ko_object_honorific", "ko-KR", "주문하신 커피 나오셨습니다.", "주문하신 커피가 나왔습니다."),
    ("ko_object_honorific", "ko-KR", "결제 금액은 만 원 되시겠습니다.", "결제 금액은 만 원입니다."),
    ("ok_hand_money", "ja-JP", "返金手続きが完了しました👌", "返金手続きが完了しました。"),
    (
        "informal_register",
        "tr-TR",
        "Siparişini kontrol ettim, adresini gönderir misin?",
        "Siparişinizi kontrol ettim, adresinizi gönderir misiniz?",
    ),
    ("informal_register", "tr-TR", "Sana yeni bir kod gönderdik.", "Size yeni bir kod gönderdik."),
    (
        "informal_register",
        "pl-PL",
        "Możesz wysłać numer zamówienia?",
        "Prosimy o przesłanie numeru zamówienia.",
    ),
    ("informal_register", "pl-PL", "Twoja paczka jest w drodze.", "Paczka jest już w drodze."),
    (
        "informal_register",
        "nl-NL",
        "Kun je ons je bestelnummer sturen?",
        "Kunt u ons uw bestelnummer sturen?",
    ),
    ("informal_register", "nl-BE", "Jouw pakket is onderweg.", "Uw pakket is onderweg."),
]


@pytest.fixture(scope="module")
def tone() -> ToneChecker:
    return ToneChecker.from_path(None, default_locale="en")


def _rules(tone: ToneChecker, text: str, locale: str) -> list[str]:
    return [f.rule for f in tone.check(text, locale).findings]


@pytest.mark.parametrize(("rule", "locale", "bad", "good"), CASES)
def test_the_rule_flags_the_bad_reply_and_not_the_good_one(tone, rule, locale, bad, good):
    assert rule in _rules(tone, bad, locale), bad
    assert rule not in _rules(tone, good, locale), good


def test_the_flagged_korean_span_is_the_word_and_the_japanese_span_the_clause(tone):
    ko = tone.check("네, 주문 확인했어.", "ko-KR").findings
    assert [(f.rule, f.span.text) for f in ko] == [("ko_banmal", "확인했어")]
    ja = tone.check("発送しました。明日届くよね。", "ja-JP").findings
    assert [(f.rule, f.span.text) for f in ja] == [("ja_plain_form", "明日届くよね")]


def test_ok_hand_means_money_only_in_japan_and_stays_an_insult_in_turkey(tone):
    assert "ok_hand_money" not in _rules(tone, "Tamamdır 👌", "en-US")
    assert _rules(tone, "Tamamdır 👌", "tr-TR") == ["ok_hand_offensive"]


def test_a_brand_using_je_keeps_it_out_of_other_dutch_free_locales(tone):
    """The nl register rule is per language: a German or English reply with 'je' is not flagged."""
    assert "informal_register" not in _rules(tone, "je ne sais quoi", "en-GB")


def test_every_new_rule_names_a_published_source():
    rules = load_rules()
    by_id = {r.id: r.source for r in [*rules.emoji_rules, *rules.phrase_rules]}
    for rule_id in NEW_RULES:
        assert rule_id in by_id
        assert len(by_id[rule_id]) > 40 and "ReplyDesk" not in by_id[rule_id], rule_id
    assert "Turkish" in rules.formality.source and "Polish" in rules.formality.source
    assert "Dutch" in rules.formality.source
    matched = {code for loc in rules.formality.locales for code in loc.match}
    assert {"tr", "pl", "nl", "ru", "it"} <= matched
