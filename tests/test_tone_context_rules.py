"""Rules that depend on the conversation: urgency, complaints, the customer's sentiment, emoji count."""

from __future__ import annotations

import pytest

from service.tone.checker import ToneChecker
from service.tone.models import Severity, ToneContext


@pytest.fixture(scope="module")
def checker() -> ToneChecker:
    return ToneChecker.from_path()


def found(checker, text, locale="en-US", **ctx) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in checker.check(text, locale, ToneContext(**ctx)).findings:
        out.setdefault(f.rule, []).append(f)
    return out


def test_any_emoji_at_critical_urgency_blocks(checker):
    result = checker.check("Card blocked 🔒 new one on the way ✅", "en-US", ToneContext(urgency="critical"))
    assert result.ok is False
    assert [f.span.text for f in result.findings if f.rule == "emoji_at_critical_urgency"] == ["🔒", "✅"]
    assert all(f.severity is Severity.block for f in result.findings if f.rule == "emoji_at_critical_urgency")
    assert checker.check("Card blocked, new one on the way.", "en-US", ToneContext(urgency="critical")).ok


@pytest.mark.parametrize(
    "ctx",
    [
        {"intent": "complaint"},
        {"intent": "charged_twice"},
        {"intent": "damaged_item", "sentiment": "neutral"},
        {"sentiment": "negative"},
        {"urgency": "high"},
    ],
)
def test_laughing_emoji_on_a_complaint_or_upset_customer_blocks(checker, ctx):
    result = checker.check("Sorry about that 😂", "en-US", ToneContext(**ctx))
    assert [(f.rule, f.severity) for f in result.findings] == [("playful_emoji_on_negative", Severity.block)]
    assert result.ok is False


def test_laughing_emoji_in_a_happy_low_stakes_conversation_is_fine(checker):
    assert found(checker, "Glad you like it 😂", intent="feedback", sentiment="positive", urgency="low") == {}
    assert found(checker, "Glad you like it 😅") == {}


def test_critical_urgency_takes_precedence_over_the_playful_and_sentiment_rules(checker):
    rules = found(
        checker, "Account secured 😂👍", intent="hacked_account", sentiment="negative", urgency="critical"
    )
    assert set(rules) == {"emoji_at_critical_urgency"}
    assert len(rules["emoji_at_critical_urgency"]) == 2


def test_cheerful_emoji_on_a_negative_message_contradicts_its_sentiment(checker):
    rules = found(
        checker, "So sorry your lamp arrived broken 😊", intent="damaged_item", sentiment="negative"
    )
    (finding,) = rules["emoji_sentiment_mismatch"]
    assert finding.severity is Severity.warn
    assert "+0.6" in finding.reason  # Emoji Sentiment Ranking score of 😊 is +0.645
    assert found(checker, "So glad it arrived 😊", sentiment="positive") == {}


def test_negative_emoji_on_a_positive_message_contradicts_its_sentiment(checker):
    assert set(found(checker, "Glad you love it 😐", sentiment="positive")) == {"emoji_sentiment_mismatch"}
    assert found(checker, "We are sorry 😐", sentiment="negative") == {}


def test_mildly_positive_or_rare_emoji_do_not_count_as_contradicting(checker):
    assert found(checker, "Sorry for the wait 🙏", locale="ja", sentiment="negative") == {}  # +0.42
    assert found(checker, "Sorry for the wait 📦", sentiment="negative") == {}  # 4 samples only
    assert found(checker, "Sorry for the wait 😊") == {}  # no sentiment known


def test_more_than_two_emoji_is_too_many(checker):
    (finding,) = found(checker, "Thanks! 🎉🎁 It ships tomorrow ✨📦")["too_many_emoji"]
    assert finding.span.text == "✨📦"
    assert finding.emoji is None
    assert "4 emoji" in finding.reason
    assert found(checker, "Thanks! 🎉 It ships tomorrow ✨") == {}


def test_context_does_not_change_culture_findings(checker):
    rules = found(
        checker, "تم 👍😂", locale="ar-SA", intent="complaint", sentiment="negative", urgency="high"
    )
    assert set(rules) == {"thumbs_up_offensive", "playful_emoji_on_negative", "emoji_sentiment_mismatch"}
