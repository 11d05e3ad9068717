"""Emoji with a meaning of their own: which locales they are flagged for, and how emoji are recognised."""

from __future__ import annotations

import pytest

from service.tone.checker import ToneChecker
from service.tone.models import Severity


@pytest.fixture(scope="module")
def checker() -> ToneChecker:
    return ToneChecker.from_path()


def rules(checker: ToneChecker, text: str, locale: str | None = None) -> set[str]:
    return {f.rule for f in checker.check(text, locale).findings}


@pytest.mark.parametrize("locale", ["ar-SA", "ar-EG", "ar", "fa-IR", "en-IR", "en-NG", "ps-AF"])
def test_thumbs_up_is_flagged_where_it_is_an_insult(checker, locale):
    assert "thumbs_up_offensive" in rules(checker, "Your refund has been approved 👍", locale)


@pytest.mark.parametrize("locale", ["en-US", "de-DE", "he-IL", "ja-JP"])
def test_thumbs_up_is_not_flagged_where_it_means_approval(checker, locale):
    assert rules(checker, "Your refund has been approved 👍", locale) == set()


def test_finding_names_the_emoji_span_and_the_matching_cultures(checker):
    text = "Approved 👍 thanks"
    finding = next(f for f in checker.check(text, "ar-SA").findings if f.rule == "thumbs_up_offensive")
    assert finding.emoji == "👍"
    assert (finding.span.start, finding.span.end) == (9, 10)
    assert text[finding.span.start : finding.span.end] == finding.span.text == "👍"
    assert finding.severity is Severity.warn
    assert finding.cultures == ["SA", "ar"]
    assert finding.source and finding.reason and finding.suggestion


def test_skin_tone_and_variation_selector_variants_match_the_base_emoji(checker):
    assert "thumbs_up_offensive" in rules(checker, "ok 👍🏿", "ar-SA")
    assert "v_sign_ambiguous" in rules(checker, "cheers ✌️", "en-GB")
    assert "v_sign_ambiguous" in rules(checker, "cheers ✌🏼", "en-GB")
    assert "dismissive_emoji" in rules(checker, "well 🤷🏽‍♀️", "en-US")  # ZWJ gender variant of 🤷


def test_ok_hand_is_flagged_for_brazil_and_turkey_only(checker):
    assert "ok_hand_offensive" in rules(checker, "Tudo certo 👌", "pt-BR")
    assert "ok_hand_offensive" in rules(checker, "Tamam 👌", "tr")
    assert rules(checker, "Tudo certo 👌", "pt-PT") == set()
    assert rules(checker, "All set 👌", "en-GB") == set()


def test_chinese_chat_readings_apply_to_every_chinese_locale_form(checker):
    for locale in ("zh", "zh-CN", "zh-TW", "zh-Hant-HK", "zh_Hans_CN"):
        assert rules(checker, "好的🙂", locale) == {"slightly_smiling_contempt"}, locale
        assert rules(checker, "再见👋", locale) == {"waving_hand_dismissive"}, locale
    assert rules(checker, "Happy to help 🙂 bye 👋", "en-US") == set()


def test_crossed_fingers_and_horns_follow_their_countries(checker):
    assert rules(checker, "Chúc may mắn 🤞", "vi-VN") == {"crossed_fingers_offensive"}
    assert rules(checker, "Good luck 🤞", "en-US") == set()
    assert rules(checker, "A presto 🤘", "it-IT") == {"horns_offensive"}
    assert rules(checker, "Nos vemos 🤘", "es-AR") == {"horns_offensive"}
    assert rules(checker, "Nos vemos 🤘", "es-MX") == set()


def test_folded_hands_is_a_note_except_where_it_means_thanks(checker):
    findings = checker.check("Thank you 🙏", "en-US").findings
    assert [(f.rule, f.severity) for f in findings] == [("folded_hands_ambiguous", Severity.info)]
    for locale in ("ja-JP", "ja", "hi-IN", "th-TH"):
        assert rules(checker, "ありがとう🙏", locale) == set(), locale


def test_sexual_and_obscene_emoji_block_everywhere(checker):
    for locale in ("en-US", "de-DE", "ja-JP", None):
        result = checker.check("Here is the candle 🍑", locale)
        assert [f.rule for f in result.findings] == ["sexual_emoji"]
        assert result.ok is False
        assert checker.check("Noted 🖕", locale).ok is False


def test_universal_warnings_and_notes(checker):
    assert rules(checker, "Great question 🤡") == {"clown_insult"}
    assert rules(checker, "Noted 🐍") == {"snake_insult"}
    assert rules(checker, "Oops 💩") == {"poo_crude"}
    assert rules(checker, "Thanks 😘") == {"suggestive_emoji"}
    assert rules(checker, "Sure 🙄") == {"dismissive_emoji"}
    assert rules(checker, "We are upset too 😡") == {"hostile_emoji"}
    assert rules(checker, "lol typo 💀") >= {"skull_ambiguous"}
    assert rules(checker, "Back in stock 🔥") == {"fire_ambiguous"}
    assert rules(checker, "Call us 🤙") == {"call_me_hand_casual"}


def test_reversed_victory_hand_is_found_although_it_is_not_a_standard_emoji(checker):
    result = checker.check("right 🖔", "en-GB")
    assert [f.rule for f in result.findings] == ["reversed_v_sign_insult"]
    assert result.emoji_count == 1


def test_text_symbols_are_not_counted_as_emoji(checker):
    result = checker.check("Northwind Goods™ © 2025 → see FAQ #3", "en-US")
    assert result.emoji_count == 0
    assert result.findings == []


def test_keycaps_flags_and_zwj_sequences_count_as_one_emoji_each(checker):
    assert checker.check("1️⃣ 🇩🇪 👨‍👩‍👧", "en-US").emoji_count == 3


def test_missing_locale_uses_the_default_locale(checker):
    result = checker.check("Thanks 🙏")
    assert result.locale == "en"
    assert {f.rule for f in result.findings} == {"folded_hands_ambiguous"}
    assert (
        ToneChecker.from_path(default_locale="ar-SA").check("ok 👍").findings[0].rule == "thumbs_up_offensive"
    )


def test_unknown_language_gets_only_rules_for_everyone(checker):
    result = checker.check("ok 👍 🍆", "xx-QQ")
    assert result.locale_recognised is False
    assert {f.rule for f in result.findings} == {"sexual_emoji"}
