"""`suggested_text`: offending emoji taken out, whitespace tidied, everything else untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from service.tone.checker import ToneChecker
from service.tone.models import ToneContext
from service.tone.rules import DEFAULT_RULES_PATH


@pytest.fixture(scope="module")
def checker() -> ToneChecker:
    return ToneChecker.from_path()


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        ("Your refund has been approved 👍", "ar-SA", "Your refund has been approved"),
        ("Approved 👍 see you soon", "ar-SA", "Approved see you soon"),
        ("👍 Approved", "ar-SA", "Approved"),
        ("Approved 👍.", "ar-SA", "Approved."),
        ("Approved👍thanks", "ar-SA", "Approved thanks"),
        ("Approved 👍🏽 👍\nSee you", "ar-SA", "Approved\nSee you"),
        ("好的🙂谢谢", "zh-CN", "好的谢谢"),
        ("Merci 🍑 !", "fr-FR", "Merci !"),
        ("Thanks 🍑 !", "en-US", "Thanks!"),
    ],
)
def test_offending_emoji_are_removed_and_whitespace_tidied(checker, text, locale, expected):
    assert checker.check(text, locale).suggested_text == expected


def test_clean_text_is_returned_unchanged_including_its_spacing(checker):
    text = "  Hello,\n\nyour order  ships today 😊  "
    assert checker.check(text, "en-US").suggested_text == text


def test_notes_do_not_remove_anything(checker):
    assert checker.check("Thank you 🙏", "en-US").suggested_text == "Thank you 🙏"


def test_playful_emoji_are_removed_on_complaints_and_wording_is_left_alone(checker):
    result = checker.check("Hey, sorry 😂 CALM DOWN", "en-US", ToneContext(intent="complaint"))
    assert result.suggested_text == "Hey, sorry CALM DOWN"


def test_every_emoji_is_removed_at_critical_urgency(checker):
    result = checker.check(
        "🔒 Account locked ✅ new password sent 📧", "en-US", ToneContext(urgency="critical")
    )
    assert result.suggested_text == "Account locked new password sent"


def test_too_many_emoji_keeps_the_first_two_that_are_acceptable(checker):
    assert (
        checker.check("Thanks 🎉 for 🎁 your ✨ order 📦", "en-US").suggested_text
        == "Thanks 🎉 for 🎁 your order"
    )
    result = checker.check("Ok 👍 thanks 🎉 for 🎁 your ✨ order", "ar-SA")
    assert result.suggested_text == "Ok thanks 🎉 for 🎁 your order"


def test_a_rule_can_replace_an_emoji_instead_of_removing_it(tmp_path: Path):
    data = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    rule = next(r for r in data["emoji_rules"] if r["id"] == "thumbs_up_offensive")
    rule["replacement"] = "(done)"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    checker = ToneChecker.from_path(path)
    assert checker.check("Refund approved 👍", "ar-SA").suggested_text == "Refund approved (done)"
