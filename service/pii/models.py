"""The PII types, a found span, and the hints a caller gives about the customer (locale, country, name)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class PiiType(StrEnum):
    card_number = "card_number"
    card_security_code = "card_security_code"
    card_expiry = "card_expiry"
    iban = "iban"
    email = "email"
    phone = "phone"
    order_number = "order_number"
    street_address = "street_address"
    postcode = "postcode"
    date_of_birth = "date_of_birth"
    national_id = "national_id"
    password = "password"
    person_name = "person_name"


# The placeholder word of each type: `[CARD_1]`, `[IBAN_2]`, ...
PLACEHOLDER_WORD: dict[PiiType, str] = {
    PiiType.card_number: "CARD",
    PiiType.card_security_code: "CVV",
    PiiType.card_expiry: "EXPIRY",
    PiiType.iban: "IBAN",
    PiiType.email: "EMAIL",
    PiiType.phone: "PHONE",
    PiiType.order_number: "ORDER",
    PiiType.street_address: "ADDRESS",
    PiiType.postcode: "POSTCODE",
    PiiType.date_of_birth: "DOB",
    PiiType.national_id: "ID",
    PiiType.password: "SECRET",
    PiiType.person_name: "NAME",
}
TYPE_OF_WORD: dict[str, PiiType] = {w: t for t, w in PLACEHOLDER_WORD.items()}

# When spans overlap, the earlier type wins (then the longer span): checksummed numbers before shapes, a
# value after a password cue before anything it might look like, names last (they are the weakest evidence).
PRIORITY: dict[PiiType, int] = {
    t: i
    for i, t in enumerate(
        [
            PiiType.password,
            PiiType.iban,
            PiiType.national_id,
            PiiType.card_number,
            PiiType.card_security_code,
            PiiType.card_expiry,
            PiiType.email,
            PiiType.date_of_birth,
            PiiType.order_number,
            PiiType.phone,
            PiiType.street_address,
            PiiType.postcode,
            PiiType.person_name,
        ]
    )
}


@dataclass(frozen=True)
class PiiSpan:
    """`value == text[start:end]`."""

    type: PiiType
    start: int
    end: int
    value: str

    def overlaps(self, other: PiiSpan) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class PiiHints:
    """What the caller knows about the customer.

    Phone numbers written without `+`/`00` are read in the first region that makes them valid, in this order:
    the locale's region (`es-MX` → MX), the sender's `country` (WhatsApp: from the `wa_id`), the configured
    `default_region`, then the usual regions of the message's `language`.
    """

    locale: str | None = None
    country: str | None = None
    default_region: str | None = None
    language: str | None = None
    names: tuple[str, ...] = ()

    def regions(self) -> list[str]:
        out: list[str] = []
        for r in (region_of(self.locale), self.country, self.default_region):
            if r and r.upper() not in out:
                out.append(r.upper())
        for r in LANGUAGE_REGIONS.get((self.language or "").lower()[:2], ()):
            if r not in out:
                out.append(r)
        return out


# Where a message in this language most likely comes from when nothing else says so (last resort for national
# phone numbers; a number must still be valid in that region's numbering plan).
LANGUAGE_REGIONS: dict[str, tuple[str, ...]] = {
    "en": ("GB", "US"),
    "es": ("ES", "MX"),
    "de": ("DE", "AT"),
    "fr": ("FR", "BE"),
    "pt": ("PT", "BR"),
    "it": ("IT",),
    "nl": ("NL", "BE"),
}


def region_of(locale: str | None) -> str | None:
    """`es-MX` → `MX`, `pt_BR` → `BR`; None when the locale names no region."""
    if not locale:
        return None
    for part in re.split(r"[-_]", locale)[1:]:
        if len(part) == 2 and part.isalpha():
            return part.upper()
    return None
