"""Triage request/response schemas (the contract every other capability builds on)."""

from __future__ import annotations

import unicodedata
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TEXT_CHARS = 4000


def clean_text(value: str) -> str:
    """Drop control characters (keep newlines/tabs), normalise to NFC and trim."""
    value = unicodedata.normalize("NFC", value)
    value = "".join(ch for ch in value if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))
    return value.strip()


def has_content(value: str) -> bool:
    """False for text made only of whitespace and invisible format characters (zero-width space, joiners,
    BOM)."""
    return any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in value)


class Channel(StrEnum):
    whatsapp = "whatsapp"
    messenger = "messenger"
    instagram = "instagram"
    sms = "sms"
    webchat = "webchat"
    email = "email"
    other = "other"


class UrgencyLevel(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    critical = "critical"


class SentimentLabel(StrEnum):
    negative = "negative"
    neutral = "neutral"
    positive = "positive"


class HistoryMessage(BaseModel):
    role: str = Field("customer", description="customer | agent | bot")
    text: str = Field(max_length=MAX_TEXT_CHARS)
    sent_at: str | None = Field(None, description="ISO 8601 time, if known")


class TriageBase(BaseModel):
    text: str = Field(description="The customer's message (1–4000 characters after trimming).")
    locale: str | None = Field(
        None, description="BCP 47 locale hint from the channel, e.g. `es-MX`.", max_length=35
    )
    channel: Channel | None = None
    history: list[HistoryMessage] = Field(
        default_factory=list, max_length=100, description="Earlier messages of the thread, oldest first."
    )
    country: str | None = Field(
        None,
        pattern=r"^[A-Za-z]{2}$",
        description="ISO 3166-1 alpha-2 country of the sender (WhatsApp: from the phone number): reads "
        "national phone numbers when the locale names no region.",
    )
    customer_name: str | None = Field(
        None,
        max_length=200,
        description="The customer's display name on the channel; never sent to an LLM (redacted wherever "
        "it appears, case- and accent-insensitively).",
    )

    @field_validator("country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        return v.upper() if v else None

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        v = clean_text(v)
        if not has_content(v):
            raise ValueError(
                "text is empty after trimming whitespace, control and invisible (zero-width) characters"
            )
        if len(v) > MAX_TEXT_CHARS:
            raise ValueError(f"text has {len(v)} characters; the limit is {MAX_TEXT_CHARS}")
        return v


class TriageRequest(TriageBase):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": "Hola, mi pedido #A12345 no ha llegado y lo necesito hoy!!",
                    "locale": "es-MX",
                    "channel": "whatsapp",
                    "history": [],
                },
            ]
        }
    )


class Language(BaseModel):
    code: str = Field(description="BCP 47 tag, e.g. `es`, `hi-Latn`")
    confidence: float = Field(ge=0, le=1)
    source: str = Field(description="text | history | locale | default — what decided the language")


class IntentAlternative(BaseModel):
    name: str
    confidence: float = Field(ge=0, le=1)


class Intent(BaseModel):
    name: str = Field(description="Taxonomy intent, or `out_of_scope`")
    confidence: float = Field(ge=0, le=1, description="Calibrated probability that `name` is right")
    alternatives: list[IntentAlternative] = Field(default_factory=list, description="Top 3 candidates")
    out_of_scope: bool = False


class Urgency(BaseModel):
    level: UrgencyLevel
    score: float = Field(ge=0, le=1)
    reasons: list[str] = Field(default_factory=list)


class Sentiment(BaseModel):
    label: SentimentLabel
    score: float = Field(ge=-1, le=1, description="-1 (very negative) … 1 (very positive)")


class Entity(BaseModel):
    type: str = Field(description="order_number | email | phone | card_number")
    value: str = Field(description="Exactly `text[start:end]` (an order number without its leading `#`)")
    start: int = Field(ge=0, description="Character offset into the cleaned `text`")
    end: int = Field(ge=0)


class TriageRead(BaseModel):
    language: Language
    intent: Intent
    urgency: Urgency
    sentiment: Sentiment
    entities: list[Entity] = Field(default_factory=list)
    automatable: bool = Field(description="True when a bot can finish this intent without a human")
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "language": {"code": "es", "confidence": 0.99, "source": "text"},
                    "intent": {
                        "name": "delivery_delay",
                        "confidence": 0.91,
                        "out_of_scope": False,
                        "alternatives": [
                            {"name": "delivery_delay", "confidence": 0.91},
                            {"name": "order_status", "confidence": 0.06},
                            {"name": "complaint", "confidence": 0.01},
                        ],
                    },
                    "urgency": {
                        "level": "high",
                        "score": 0.65,
                        "reasons": [
                            "deadline: 'hoy' + 'necesito'",
                            "intent delivery_delay: normal by default (confidence 0.91)",
                        ],
                    },
                    "sentiment": {"label": "negative", "score": -0.51},
                    "entities": [{"type": "order_number", "value": "A12345", "start": 17, "end": 23}],
                    "automatable": True,
                }
            ]
        }
    )
