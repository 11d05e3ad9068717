"""Reversible redaction: PII spans → placeholders (`[CARD_1]`, `[NAME_2]`, ...) before a text leaves the
service, and placeholders → values in what comes back.

One `Redactor` serves every text of one LLM call (the message, the thread, facts), so a value keeps one
placeholder everywhere. `restore_draft` puts values back into a draft, except that a draft never shows a card
or an IBAN in clear: those come back masked ("card ending 0004", "IBAN ending 4300"), card security codes,
passwords and expiry dates not at all ("•••"), and any card or IBAN the LLM wrote out in digits is masked
too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from service.pii.detect import payment_spans
from service.pii.models import PLACEHOLDER_WORD, TYPE_OF_WORD, PiiSpan, PiiType

PLACEHOLDER_RE = re.compile(r"\[(" + "|".join(TYPE_OF_WORD) + r")_(\d+)\]")
WITHHELD = "•••"
WITHHELD_EXPIRY = "••/••"

# (noun, tail) per language: "card ending 0004"; the noun is left out when the draft already says "card"
_CARD_MASK: dict[str, tuple[str, str]] = {
    "en": ("card", "ending {d}"),
    "es": ("tarjeta", "terminada en {d}"),
    "de": ("Karte", "mit den Endziffern {d}"),
    "fr": ("carte", "se terminant par {d}"),
    "pt": ("cartão", "terminado em {d}"),
    "it": ("carta", "che termina con {d}"),
    "nl": ("kaart", "eindigend op {d}"),
}
_IBAN_TAIL: dict[str, str] = {
    "en": "ending {d}",
    "es": "terminado en {d}",
    "de": "mit den Endziffern {d}",
    "fr": "se terminant par {d}",
    "pt": "terminado em {d}",
    "it": "che termina con {d}",
    "nl": "eindigend op {d}",
}
_CARD_BEFORE = re.compile(r"(?:card|tarjeta|karte|carte|cartão|cartao|carta|kaart)\s*$", re.IGNORECASE)
_IBAN_BEFORE = re.compile(r"iban\s*$", re.IGNORECASE)


def normalise(kind: PiiType, value: str) -> str:
    """The form two mentions of one value share: digits and letters for numbers, folded text for words."""
    if kind in (PiiType.person_name, PiiType.street_address, PiiType.email):
        decomposed = unicodedata.normalize("NFD", value.casefold())
        return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())
    if kind is PiiType.password:
        return value
    return re.sub(r"[^0-9A-Za-z]", "", value).upper()


class Redactor:
    """Placeholders for the spans of several texts, numbered per type in order of first appearance."""

    def __init__(self) -> None:
        self.mapping: dict[str, str] = {}  # placeholder -> the value as first written
        self._by_key: dict[tuple[PiiType, str], str] = {}
        self._counters: dict[PiiType, int] = {}

    def redact(self, text: str, spans: Iterable[PiiSpan]) -> str:
        pieces, pos = [], 0
        for span in sorted(spans, key=lambda s: s.start):
            if span.start < pos or text[span.start : span.end] != span.value:
                continue  # overlapping or stale span: leave the text as it is
            pieces += [text[pos : span.start], self.placeholder(span.type, span.value)]
            pos = span.end
        pieces.append(text[pos:])
        return "".join(pieces)

    def placeholder(self, kind: PiiType, value: str) -> str:
        key = (kind, normalise(kind, value))
        if key not in self._by_key:
            self._counters[kind] = self._counters.get(kind, 0) + 1
            placeholder = f"[{PLACEHOLDER_WORD[kind]}_{self._counters[kind]}]"
            self._by_key[key] = placeholder
            self.mapping[placeholder] = value
        return self._by_key[key]


def type_of(placeholder: str) -> PiiType | None:
    m = PLACEHOLDER_RE.fullmatch(placeholder)
    return TYPE_OF_WORD[m.group(1)] if m else None


def has_placeholders(text: str) -> bool:
    return bool(PLACEHOLDER_RE.search(text))


def restore(text: str, mapping: dict[str, str]) -> str:
    """Every placeholder of `mapping` back to its value as it was (for text that stays in the service)."""
    if not mapping:
        return text
    pattern = re.compile("|".join(re.escape(p) for p in sorted(mapping, key=len, reverse=True)))
    return pattern.sub(lambda m: mapping[m.group()], text)


def masked(kind: PiiType, value: str, language: str = "en", *, noun: bool = True) -> str:
    """How a draft shows a card or an IBAN: its last four characters only."""
    last4 = re.sub(r"[^0-9A-Za-z]", "", value)[-4:]
    lang = language if language in _CARD_MASK else "en"
    if kind is PiiType.iban:
        return ("IBAN " if noun else "") + _IBAN_TAIL[lang].format(d=last4)
    word, tail = _CARD_MASK[lang]
    return (f"{word} " if noun else "") + tail.format(d=last4)


def restore_draft(text: str, mapping: dict[str, str], language: str = "en") -> str:
    """A draft for the customer: placeholders back, cards and IBANs masked, secrets withheld; card numbers and
    IBANs the text spells out (the LLM may echo one) are masked as well."""
    pieces, pos = [], 0
    for m in PLACEHOLDER_RE.finditer(text):
        value = mapping.get(m.group())
        if value is None:
            continue  # an unknown placeholder stays (the draft checks drop such a draft)
        kind = TYPE_OF_WORD[m.group(1)]
        before = text[max(0, m.start() - 20) : m.start()]
        pieces.append(text[pos : m.start()])
        if kind is PiiType.card_number:
            pieces.append(masked(kind, value, language, noun=not _CARD_BEFORE.search(before)))
        elif kind is PiiType.iban:
            pieces.append(masked(kind, value, language, noun=not _IBAN_BEFORE.search(before)))
        elif kind in (PiiType.card_security_code, PiiType.password):
            pieces.append(WITHHELD)
        elif kind is PiiType.card_expiry:
            pieces.append(WITHHELD_EXPIRY)
        else:
            pieces.append(value)
        pos = m.end()
    pieces.append(text[pos:])
    return mask_payment_data("".join(pieces), mapping, language)


def mask_payment_data(text: str, mapping: dict[str, str] | None = None, language: str = "en") -> str:
    """Mask every card number and IBAN written out in `text`, and withhold known secrets written out."""
    mapping = mapping or {}
    spans = payment_spans(text)
    known_cards = {
        normalise(PiiType.card_number, v) for p, v in mapping.items() if type_of(p) is PiiType.card_number
    }
    if known_cards:  # a known card with its digits grouped differently (or failing Luhn) is still that card
        for m in re.finditer(r"(?<![\w+])\d(?:[ .\-]{0,3}\d){11,22}(?!\w)", text):
            if normalise(PiiType.card_number, m.group()) in known_cards:
                spans.append(PiiSpan(PiiType.card_number, m.start(), m.end(), m.group()))
    pieces, pos = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        if s.start < pos:
            continue
        before = text[max(0, s.start - 20) : s.start]
        noun = not (_IBAN_BEFORE if s.type is PiiType.iban else _CARD_BEFORE).search(before)
        pieces += [text[pos : s.start], masked(s.type, s.value, language, noun=noun)]
        pos = s.end
    pieces.append(text[pos:])
    out = "".join(pieces)
    for placeholder, value in mapping.items():
        if type_of(placeholder) in (PiiType.card_security_code, PiiType.password) and len(value) >= 3:
            out = re.sub(rf"(?<![\w]){re.escape(value)}(?![\w])", WITHHELD, out)
    return out
