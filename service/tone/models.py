"""Tone-check request/response schemas."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.tone.locales import LOCALE_PATTERN
from service.triage.models import MAX_TEXT_CHARS, SentimentLabel, UrgencyLevel


class Severity(StrEnum):
    info = "info"
    warn = "warn"
    block = "block"


class ToneContext(BaseModel):
    """What triage knows about the customer's message the reply answers (all optional)."""

    intent: str | None = Field(
        None, max_length=64, description="Intent of the customer's message, e.g. `complaint`."
    )
    sentiment: SentimentLabel | None = Field(None, description="Sentiment of the customer's message.")
    urgency: UrgencyLevel | None = Field(None, description="Urgency of the case.")


class ToneCheckBase(BaseModel):
    text: str = Field(description="The reply to check, as it would be sent (1–4000 characters, not blank).")
    locale: str | None = Field(
        None,
        max_length=35,
        description="BCP 47 locale of the customer, e.g. `ar-SA` (`_` is accepted). Unset: the service "
        "default.",
    )
    context: ToneContext = Field(default_factory=ToneContext)

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty or only whitespace")
        if len(v) > MAX_TEXT_CHARS:
            raise ValueError(f"text has {len(v)} characters; the limit is {MAX_TEXT_CHARS}")
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("text contains an unpaired surrogate; send valid UTF-8 text") from exc
        return v

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if not LOCALE_PATTERN.fullmatch(v):
            raise ValueError(f"'{v}' is not a locale tag; use BCP 47 like 'en-US', 'pt-BR' or 'zh-Hant-TW'")
        return v


class ToneCheckRequest(ToneCheckBase):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": "Your refund has been approved 👍😂",
                    "locale": "ar-SA",
                    "context": {"intent": "complaint", "sentiment": "negative", "urgency": "high"},
                },
            ]
        }
    )


class TextSpan(BaseModel):
    start: int = Field(
        ge=0, description="Offset of the first character (Unicode code points, as Python counts)."
    )
    end: int = Field(ge=0, description="Offset just past the last character.")
    text: str = Field(description="The flagged text, `text[start:end]`.")


class ToneFinding(BaseModel):
    span: TextSpan
    emoji: str | None = Field(None, description="The flagged emoji, when the finding is about one.")
    rule: str = Field(description="Rule id, e.g. `thumbs_up_offensive` (see `service/tone/rules.yaml`).")
    severity: Severity
    reason: str
    cultures: list[str] = Field(
        default_factory=list,
        description="Who reads it this way: `*` everyone, `ar` a language, `SA` a country; empty for context "
        "rules.",
    )
    suggestion: str
    source: str = Field(description="Where the claim behind the rule comes from.")


class ToneCheckRead(BaseModel):
    ok: bool = Field(description="True when no finding has severity `block`.")
    findings: list[ToneFinding] = Field(default_factory=list, description="In text order.")
    suggested_text: str = Field(
        description="The text with offending emoji removed and whitespace tidied; wording is left as is."
    )
    locale: str = Field(description="Normalised locale the rules were matched against.")
    locale_recognised: bool = Field(
        description="False when the language of the locale is unknown: only rules for everyone applied."
    )
    emoji_count: int = Field(ge=0)
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ok": False,
                    "findings": [
                        {
                            "span": {"start": 30, "end": 31, "text": "👍"},
                            "emoji": "👍",
                            "rule": "thumbs_up_offensive",
                            "severity": "warn",
                            "cultures": ["SA", "ar"],
                            "reason": "👍 is a rude gesture (roughly the middle finger, 'sit on it') in "
                            "parts of the Middle East and West Africa.",
                            "suggestion": "Confirm in words ('Done', 'Confirmed') instead of 👍.",
                            "source": "Mashable via AOL News, 'Don't even think about using these emoji in "
                            "these countries' (2017)",
                        },
                        {
                            "span": {"start": 31, "end": 32, "text": "😂"},
                            "emoji": "😂",
                            "rule": "playful_emoji_on_negative",
                            "severity": "block",
                            "cultures": [],
                            "reason": "Playful or laughing 😂 on a complaint, an upset customer or an urgent "
                            "case reads as mocking.",
                            "suggestion": "Remove 😂; acknowledge the problem.",
                            "source": "ReplyDesk support style policy.",
                        },
                    ],
                    "suggested_text": "Your refund has been approved",
                    "locale": "ar-SA",
                    "locale_recognised": True,
                    "emoji_count": 2,
                }
            ]
        }
    )
