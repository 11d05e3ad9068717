"""Entities in a customer message (order numbers, emails, phone numbers, payment cards) with character spans,
and the reversible redaction built on them (PII never has to leave the service: redact before an LLM call,
restore in the draft).

Precedence when spans overlap: card (Luhn-valid) > email > order number > phone, so a card number is never
also reported as a phone or an order. Phone numbers come from libphonenumber (`phonenumbers`): numbers written
with `+`/`00` anywhere, national formats when the locale names a region (`es-MX` → MX).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

from service.triage.models import Entity

ORDER_KEYWORDS = (
    r"order|orders|pedido|bestellung|bestellnummer|auftragsnummer|commande|encomenda|ordine|"
    r"bestelling|ordernummer|zam[oó]wienie|sipari[sş]"
)
_NUMBER_WORDS = r"number|num|no|nr|n[º°o]|n[uú]mero|nummer|numéro|id|ref|de|do|del|da|di|#"
_ORDER_VALUE = r"(?P<value>[A-Za-z]{0,4}-?\d{4,12}|\d{4,12})"
_ORDER_AFTER_KEYWORD = re.compile(
    rf"\b(?:{ORDER_KEYWORDS})\b(?:[\s.:#º°-]*(?:{_NUMBER_WORDS})(?![^\W\d_]))*[\s.:#º°-]*{_ORDER_VALUE}\b",
    re.IGNORECASE,
)
_ORDER_KEYWORD_AFTER = re.compile(  # `número de pedido 12345`, `Nummer der Bestellung 12345`
    rf"\b(?:n[uú]mero|numéro|nummer|nr|number)\.?\s+(?:de\s+|do\s+|del\s+)?(?:{ORDER_KEYWORDS})\b[\s.:#º°-]*{_ORDER_VALUE}\b",
    re.IGNORECASE,
)
_ORDER_HASH = re.compile(r"(?<![\w#])#(?P<value>[A-Za-z]{0,4}-?\d{3,12})\b")
_ORDER_CODE = re.compile(r"\b(?P<value>[A-Z]{2,4}-\d{4,12})\b")  # NW-48213
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")

PRIORITY = {"card_number": 0, "email": 1, "order_number": 2, "phone": 3}
PLACEHOLDER = {"card_number": "CARD", "email": "EMAIL", "order_number": "ORDER", "phone": "PHONE"}
_PLACEHOLDER_RE = re.compile(r"\[(?:CARD|EMAIL|ORDER|PHONE)_\d+\]")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def region_of(locale: str | None) -> str | None:
    """`es-MX` → `MX`, `pt_BR` → `BR`; None when the locale names no region."""
    if not locale:
        return None
    for part in re.split(r"[-_]", locale)[1:]:
        if len(part) == 2 and part.isalpha():
            return part.upper()
    return None


@dataclass(frozen=True)
class _Candidate:
    type: str
    start: int
    end: int

    def overlaps(self, other: _Candidate) -> bool:
        return self.start < other.end and other.start < self.end


def _candidates(text: str, region: str | None) -> list[_Candidate]:
    found: list[_Candidate] = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(_Candidate("card_number", m.start(), m.end()))
    found += [_Candidate("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    for pattern in (_ORDER_AFTER_KEYWORD, _ORDER_KEYWORD_AFTER, _ORDER_HASH, _ORDER_CODE):
        found += [
            _Candidate("order_number", m.start("value"), m.end("value")) for m in pattern.finditer(text)
        ]
    region = region if region in phonenumbers.SUPPORTED_REGIONS else None
    for match in PhoneNumberMatcher(text, region, leniency=Leniency.VALID):
        found.append(_Candidate("phone", match.start, match.end))
    return found


def extract_entities(text: str, locale: str | None = None) -> list[Entity]:
    """Entities in reading order; spans never overlap; `value == text[start:end]`."""
    accepted: list[_Candidate] = []
    ranked = sorted(
        _candidates(text, region_of(locale)), key=lambda c: (PRIORITY[c.type], -(c.end - c.start), c.start)
    )
    for cand in ranked:
        if not any(cand.overlaps(a) for a in accepted):
            accepted.append(cand)
    accepted.sort(key=lambda c: c.start)
    return [Entity(type=c.type, value=text[c.start : c.end], start=c.start, end=c.end) for c in accepted]


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
    """Put the original values back wherever a placeholder of `mapping` appears (e.g. in an LLM draft)."""
    if not mapping:
        return text
    pattern = re.compile("|".join(re.escape(p) for p in sorted(mapping, key=len, reverse=True)))
    return pattern.sub(lambda m: mapping[m.group()], text)


def has_placeholders(text: str) -> bool:
    return bool(_PLACEHOLDER_RE.search(text))
