"""Entities in a customer message (order numbers, emails, phone numbers, payment cards) with character spans,
and the reversible redaction built on them.

Detection is `service.pii.find_pii` (which also knows IBANs, addresses, names, ... for the redaction before an
LLM call); triage reports these four types of it. Overlaps are resolved over every PII type first, so a card
number is never also reported as a phone or an order, and the digits of an IBAN never as a card. Phone
numbers come from libphonenumber (`phonenumbers`): numbers written with `+`/`00` anywhere, national formats
when the locale names a region (`es-MX` → MX) or the sender's country is known.
"""

from __future__ import annotations

import re

from stdnum import luhn

from service.pii.detect import find_pii
from service.pii.models import PLACEHOLDER_WORD, PiiHints, PiiType
from service.pii.models import region_of as region_of
from service.pii.redaction import has_placeholders as has_placeholders
from service.triage.models import Entity

ENTITY_TYPES = (PiiType.card_number, PiiType.email, PiiType.order_number, PiiType.phone)
PLACEHOLDER = {t.value: w for t, w in PLACEHOLDER_WORD.items()}


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    return digits.isdigit() and luhn.is_valid(digits)


def extract_entities(text: str, locale: str | None = None, *, country: str | None = None) -> list[Entity]:
    """Entities in reading order; spans never overlap; `value == text[start:end]`."""
    spans = find_pii(text, PiiHints(locale=locale, country=country), types=ENTITY_TYPES)
    return [Entity(type=s.type.value, value=s.value, start=s.start, end=s.end) for s in spans]


def redact(text: str, entities: list[Entity]) -> tuple[str, dict[str, str]]:
    """Replace each entity by a stable placeholder (`[EMAIL_1]`, `[CARD_1]`, ...; the same value always gets
    the same placeholder) and return (redacted text, {placeholder: original value})."""
    mapping: dict[str, str] = {}
    by_value: dict[tuple[str, str], str] = {}
    counters: dict[str, int] = {}
    pieces, pos = [], 0
    for ent in sorted(entities, key=lambda e: e.start):
        if ent.start < pos or text[ent.start : ent.end] != ent.value:
            continue  # overlapping or stale entity: leave the text as it is
        key = (ent.type, ent.value)
        if key not in by_value:
            counters[ent.type] = counters.get(ent.type, 0) + 1
            placeholder = f"[{PLACEHOLDER.get(ent.type, ent.type.upper())}_{counters[ent.type]}]"
            by_value[key] = placeholder
            mapping[placeholder] = ent.value
        pieces += [text[pos : ent.start], by_value[key]]
        pos = ent.end
    pieces.append(text[pos:])
    return "".join(pieces), mapping


def restore(text: str, mapping: dict[str, str]) -> str:
    """Put the original values back wherever a placeholder of `mapping` appears."""
    if not mapping:
        return text
    pattern = re.compile("|".join(re.escape(p) for p in sorted(mapping, key=len, reverse=True)))
    return pattern.sub(lambda m: mapping[m.group()], text)
