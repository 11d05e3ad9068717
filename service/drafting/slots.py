"""Per-intent required information (`slots.yaml`): which slots an intent needs and which ones a message
fills."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service import yamlfile
from service.errors import InvalidInput
from service.triage.models import Entity

SLOTS_PATH = Path(__file__).resolve().parent / "slots.yaml"


class SlotSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    entities: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    ask: dict[str, str] = Field(description="Noun phrase asking for the slot, per language code.")
    sensitive: bool = False

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for p in v:
            re.compile(p)
        return v


class SlotBook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    slots: dict[str, SlotSpec]
    intents: dict[str, list[str]]
    self_service: list[str] = Field(
        default_factory=list,
        description="Intents an article's steps answer: the draft gives them and asks for missing slots too.",
    )


@dataclass(frozen=True)
class SlotStatus:
    required: list[str]
    filled: dict[str, list[str]] = field(
        default_factory=dict
    )  # slot -> values found (entities or pattern matches)

    @property
    def missing(self) -> list[str]:
        return [s for s in self.required if s not in self.filled]


class SlotResolver:
    """Decides which required slots of an intent a message (plus the customer's history) already fills."""

    def __init__(self, book: SlotBook) -> None:
        unknown = {s for names in book.intents.values() for s in names if s not in book.slots}
        if unknown:
            raise InvalidInput(f"slots.yaml: intents use undefined slots {sorted(unknown)}")
        stray = sorted(set(book.self_service) - set(book.intents))
        if stray:
            raise InvalidInput(f"slots.yaml: self_service names intents without a slot list {stray}")
        self.book = book
        self._patterns = {
            name: [re.compile(p, re.IGNORECASE) for p in spec.patterns] for name, spec in book.slots.items()
        }

    @classmethod
    def load(cls, path: Path = SLOTS_PATH) -> SlotResolver:
        return cls(_load_book(Path(path)))

    def self_service(self, intent: str) -> bool:
        """True when an article that answers the intent answers the customer (steps first, then questions)."""
        return intent in self.book.self_service

    def required(self, intent: str) -> list[str]:
        return list(self.book.intents.get(intent, []))

    def spec(self, slot: str) -> SlotSpec:
        return self.book.slots[slot]

    def resolve(self, intent: str, texts: Iterable[str], entities: Iterable[Entity]) -> SlotStatus:
        required = self.required(intent)
        if not required:
            return SlotStatus(required=[])
        ents = list(entities)
        corpus = list(texts)
        filled: dict[str, list[str]] = {}
        for slot in required:
            spec = self.book.slots[slot]
            values = [e.value for e in ents if e.type in spec.entities]
            if not values:
                for pattern in self._patterns[slot]:
                    values += [m.group(0) for t in corpus for m in pattern.finditer(t)]
            if values:
                filled[slot] = list(dict.fromkeys(values))
        return SlotStatus(required=required, filled=filled)

    def ask(self, slot: str, language: str, fallback_language: str = "en") -> str:
        asks = self.book.slots[slot].ask
        return asks.get(language) or asks.get(fallback_language) or self.book.slots[slot].label


@cache
def _load_book(path: Path) -> SlotBook:
    try:
        raw = yamlfile.safe_load(path.read_text(encoding="utf-8"))
        return SlotBook.model_validate(raw)
    except (OSError, yamlfile.YAMLError, ValidationError, re.error) as exc:
        raise InvalidInput(f"cannot load slot definitions {path}: {exc}") from exc
