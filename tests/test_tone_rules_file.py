"""The rules file: the bundled one is complete and sourced; a custom one is validated and used by the
service."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from service.container import Container
from service.settings import Settings
from service.tone.checker import ToneChecker
from service.tone.rules import DEFAULT_RULES_PATH, RulesFileError, ToneConfigError, load_rules


def bundled() -> dict:
    return yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))


def test_bundled_rules_load_and_every_rule_names_its_source():
    rules = load_rules()
    assert len(rules.rule_ids) == len(set(rules.rule_ids)) >= 30
    described = (
        list(rules.emoji_rules)
        + list(rules.phrase_rules)
        + [
            rules.context.critical_urgency,
            rules.context.playful_on_negative,
            rules.context.sentiment_mismatch,
            rules.context.emoji_count,
            rules.informal_markers,
            rules.shouting,
        ]
    )
    assert all(r.source.strip() and r.reason.strip() and r.suggestion.strip() for r in described)
    assert rules.formality.source.strip()


def test_the_rules_the_brief_names_are_there():
    rules = load_rules()
    by_emoji = {e: r for r in rules.emoji_rules for e in r.emoji}
    assert {"SA", "NG"} <= set(by_emoji["👍"].cultures)
    assert {"BR", "TR"} <= set(by_emoji["👌"].cultures)
    assert "VN" in by_emoji["🤞"].cultures
    assert "zh" in by_emoji["🙂"].cultures and "zh" in by_emoji["👋"].cultures
    assert "JP" in by_emoji["🙏"].except_cultures
    assert {by_emoji[e].severity for e in "🍆🍑💦"} == {"block"}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["emoji_rules"][0].update(severity="fatal"), "severity"),
        (lambda d: d["emoji_rules"][0].update(cultures=["Saudi Arabia"]), "culture codes"),
        (lambda d: d["emoji_rules"][1].update(id=d["emoji_rules"][0]["id"]), "unique"),
        (lambda d: d["phrase_rules"][0]["patterns"]["en"].append("(unclosed"), "regular expression"),
        (
            lambda d: d["context"]["playful_on_negative"]["when"].update(intent_groups=["nope"]),
            "intent groups",
        ),
        (lambda d: d["emoji_rules"][0].update(colour="red"), "colour"),
    ],
)
def test_a_broken_rules_file_is_rejected_with_the_reason(tmp_path, mutate, message):
    data = bundled()
    mutate(data)
    with pytest.raises(RulesFileError, match=message):
        load_rules(_write(tmp_path, data))


def test_missing_or_non_yaml_rules_file_is_rejected(tmp_path):
    with pytest.raises(RulesFileError, match="cannot read"):
        load_rules(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("emoji_rules: [unclosed", encoding="utf-8")
    with pytest.raises(RulesFileError, match="not valid YAML"):
        load_rules(bad)


def test_the_service_uses_the_rules_file_from_settings(tmp_path):
    data = bundled()
    data["emoji_rules"].append(
        {
            "id": "pineapple_test",
            "emoji": ["🍍"],
            "severity": "warn",
            "cultures": ["*"],
            "reason": "test",
            "suggestion": "test",
            "source": "test",
        }
    )
    settings = Settings(data_dir=tmp_path, tone_rules_path=_write(tmp_path, data), default_locale="de-DE")
    checker = Container(settings).tone
    result = checker.check("Ananas 🍍")
    assert [f.rule for f in result.findings] == ["pineapple_test"]
    assert result.locale == "de-DE"


def test_a_default_locale_that_is_not_a_locale_tag_is_a_configuration_error():
    with pytest.raises(ToneConfigError, match="not a locale tag"):
        ToneChecker.from_path(default_locale="English (US)")
