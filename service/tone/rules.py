"""Schema of the tone rules file (`rules.yaml`) and its loader. A bad file fails at start-up with a clear
message."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from service import yamlfile
from service.errors import ServiceUnavailable
from service.tone.models import Severity, ToneContext
from service.triage.models import SentimentLabel, UrgencyLevel

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.yaml")
_CULTURE = re.compile(r"\*|[a-z]{2,3}|[A-Z]{2}|[0-9]{3}|[a-z]{2,3}-[A-Z]{2}")


class ToneConfigError(ServiceUnavailable):
    """The tone checker is misconfigured and cannot run."""

    code = "tone_config_invalid"


class RulesFileError(ToneConfigError):
    """The tone rules file is missing, not YAML, or does not follow the schema."""

    code = "tone_rules_invalid"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Conditions(_Strict):
    """Holds when ANY listed condition holds (an empty block never holds)."""

    intent_groups: list[str] = Field(default_factory=list)
    intents: list[str] = Field(default_factory=list)
    sentiments: list[SentimentLabel] = Field(default_factory=list)
    urgencies: list[UrgencyLevel] = Field(default_factory=list)

    def holds(self, ctx: ToneContext, groups: dict[str, list[str]]) -> bool:
        if ctx.intent and (
            ctx.intent in self.intents or any(ctx.intent in groups.get(g, ()) for g in self.intent_groups)
        ):
            return True
        if ctx.sentiment is not None and ctx.sentiment in self.sentiments:
            return True
        return ctx.urgency is not None and ctx.urgency in self.urgencies


class _Described(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    severity: Severity
    reason: str
    suggestion: str
    source: str


def _check_cultures(codes: list[str]) -> list[str]:
    bad = [c for c in codes if not _CULTURE.fullmatch(c)]
    if bad:
        raise ValueError(
            f"culture codes {bad} are not '*', a language (ar), a region (SA) or language-region (pt-BR)"
        )
    return codes


class EmojiRule(_Described):
    emoji: list[str] = Field(min_length=1)
    cultures: list[str] = Field(min_length=1)
    except_cultures: list[str] = Field(default_factory=list)
    replacement: str = Field(
        "", description="Text put in place of the emoji in suggested_text (default: removed)."
    )

    @field_validator("cultures", "except_cultures")
    @classmethod
    def _cultures(cls, v: list[str]) -> list[str]:
        return _check_cultures(v)


class CriticalUrgencyRule(_Described):
    pass


class PlayfulRule(_Described):
    emoji: list[str] = Field(min_length=1)
    when: Conditions


class SentimentMismatchRule(_Described):
    min_samples: int = Field(ge=1)
    positive_at_least: float = Field(ge=-1, le=1)
    negative_at_most: float = Field(ge=-1, le=1)


class EmojiCountRule(_Described):
    max_emoji: int = Field(ge=0)


class ContextSection(_Strict):
    intent_groups: dict[str, list[str]] = Field(default_factory=dict)
    critical_urgency: CriticalUrgencyRule
    playful_on_negative: PlayfulRule
    sentiment_mismatch: SentimentMismatchRule
    emoji_count: EmojiCountRule


class RegisterLocale(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    match: list[str] = Field(min_length=1)
    except_: list[str] = Field(default_factory=list, alias="except")
    formal: str
    reason: str
    words: list[str] = Field(min_length=1)
    ignore: list[str] = Field(
        default_factory=list, description="Regexes; a word inside one of their matches is not flagged."
    )

    @field_validator("match", "except_")
    @classmethod
    def _cultures(cls, v: list[str]) -> list[str]:
        return _check_cultures(v)


class RegisterSection(_Strict):
    id: str
    severity: Severity
    source: str
    suggestion: str
    locales: list[RegisterLocale]


class Marker(_Strict):
    pattern: str
    languages: list[str] = Field(min_length=1)


class MarkerSection(_Described):
    escalated_severity: Severity
    escalate_when: Conditions = Field(default_factory=Conditions)
    markers: list[Marker] = Field(default_factory=list)
    punctuation: list[str] = Field(default_factory=list)


class PhraseRule(_Described):
    when: Conditions | None = None
    patterns: dict[str, list[str]] = Field(description="language -> regular expressions (case-insensitive)")


class ShoutingRule(_Described):
    min_word_letters: int = Field(2, ge=1)
    min_run_words: int = Field(2, ge=1)
    emphatic_words: list[str] = Field(default_factory=list)
    acronyms: list[str] = Field(default_factory=list)
    quotes: list[tuple[str, str]] = Field(
        default_factory=list,
        description="Opening/closing quote pairs; capitals quoted inside one are data, not shouting.",
    )
    max_quoted_chars: int = Field(
        40, ge=1, description="Longer quoted passages are still checked for shouting."
    )
    code_chars: str = Field(
        "", description="A token with one of these characters (or a digit) inside it is a code."
    )
    command_words_after: list[str] = Field(
        default_factory=list,
        description="Regexes (case-insensitive) for 'reply'/'send'-like verbs; ONE capitalised word right "
        "after one "
        "is a keyword to type (Reply STOP), not shouting.",
    )
    not_command_words: list[str] = Field(
        default_factory=list,
        description="Capitalised words that stay emphasis even after such a verb (Reply NOW).",
    )

    @field_validator("quotes")
    @classmethod
    def _quotes(cls, v: list[tuple[str, str]]) -> list[tuple[str, str]]:
        bad = [q for q in v if not q[0] or not q[1]]
        if bad:
            raise ValueError(f"quote pairs {bad} need a non-empty opening and closing mark")
        return v


class ToneRules(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    version: int
    emoji_rules: list[EmojiRule]
    context: ContextSection
    formality: RegisterSection = Field(alias="register")
    informal_markers: MarkerSection
    phrase_rules: list[PhraseRule] = Field(default_factory=list)
    shouting: ShoutingRule

    @model_validator(mode="after")
    def _consistent(self) -> ToneRules:
        ids = (
            [r.id for r in self.emoji_rules]
            + [r.id for r in self.phrase_rules]
            + [
                self.context.critical_urgency.id,
                self.context.playful_on_negative.id,
                self.context.sentiment_mismatch.id,
                self.context.emoji_count.id,
                self.formality.id,
                self.informal_markers.id,
                self.shouting.id,
            ]
        )
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rule ids must be unique; repeated: {dupes}")
        groups = self.context.intent_groups
        conditions = [self.context.playful_on_negative.when, self.informal_markers.escalate_when]
        conditions += [r.when for r in self.phrase_rules if r.when is not None]
        unknown = sorted({g for c in conditions for g in c.intent_groups if g not in groups})
        if unknown:
            raise ValueError(f"unknown intent groups {unknown}; define them under context.intent_groups")
        patterns = [m.pattern for m in self.informal_markers.markers] + list(
            self.informal_markers.punctuation
        )
        patterns += [p for r in self.phrase_rules for ps in r.patterns.values() for p in ps]
        patterns += [p for loc in self.formality.locales for p in loc.ignore]
        patterns += list(self.shouting.command_words_after)
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"bad regular expression {p!r}: {exc}") from exc
        return self

    @property
    def rule_ids(self) -> list[str]:
        return (
            [r.id for r in self.emoji_rules]
            + [
                self.context.critical_urgency.id,
                self.context.playful_on_negative.id,
                self.context.sentiment_mismatch.id,
                self.context.emoji_count.id,
                self.formality.id,
                self.informal_markers.id,
            ]
            + [r.id for r in self.phrase_rules]
            + [self.shouting.id]
        )


def load_rules(path: Path | str | None = None) -> ToneRules:
    path = Path(path) if path else DEFAULT_RULES_PATH
    try:
        raw = yamlfile.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesFileError(f"cannot read tone rules {path}: {exc}") from exc
    except yamlfile.YAMLError as exc:
        raise RulesFileError(f"tone rules {path} are not valid YAML: {exc}") from exc
    try:
        return ToneRules.model_validate(raw)
    except ValidationError as exc:
        raise RulesFileError(f"tone rules {path} do not follow the schema: {exc}") from exc
