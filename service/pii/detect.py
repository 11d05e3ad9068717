"""Find personal data in a text: `find_pii(text, hints)` → non-overlapping `PiiSpan`s in reading order.

Types (see `PiiType`): payment cards (Luhn-valid 13-19 digits grouped by spaces, double spaces, dots or
dashes; a run failing Luhn still is a card next to a card word), card security codes and expiry dates next to
their cue or a card, IBANs (ISO 13616 checksum by python-stdnum), e-mails (Unicode local parts, IDN domains),
phone numbers (libphonenumber: `+` and `00` prefixes anywhere, national formats in the regions of
`PiiHints.regions()`), order codes in any case, street addresses and postcodes (en, es, de, fr, pt, it, nl
formats), dates of birth (a date next to a birth cue), national identifiers (validated by python-stdnum where
a checksum exists, else after a cue), passwords / PINs / one-time codes after their cue, and the customer's
own name (from the channel profile, case- and accent-insensitively; or after "my name is" and sign-offs).

Cue words are in `cues.py`. Overlaps resolve by `models.PRIORITY`, then the longer span.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.br import cpf
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pt import nif
from stdnum.us import ssn

from service.pii import cues
from service.pii.models import PRIORITY, PiiHints, PiiSpan, PiiType

Detector = Callable[[str, PiiHints], list[PiiSpan]]

_WORD_END = r"(?![^\W_])"
_WORD_START = r"(?<![^\W_])"


def find_pii(
    text: str, hints: PiiHints | None = None, *, types: Iterable[PiiType] | None = None
) -> list[PiiSpan]:
    """Every PII span of `text` (only `types`, when given, after overlaps are resolved over all types)."""
    hints = hints or PiiHints()
    found: list[PiiSpan] = []
    for detector in DETECTORS:
        found += detector(text, hints)
    accepted = resolve(found)
    if types is not None:
        wanted = set(types)
        accepted = [s for s in accepted if s.type in wanted]
    return accepted


def resolve(spans: Iterable[PiiSpan]) -> list[PiiSpan]:
    """Non-overlapping spans: the type of higher priority wins, then the longer span, then the earlier."""
    accepted: list[PiiSpan] = []
    for s in sorted(spans, key=lambda s: (PRIORITY[s.type], -(s.end - s.start), s.start)):
        if not any(s.overlaps(a) for a in accepted):
            accepted.append(s)
    return sorted(accepted, key=lambda s: s.start)


def _span(kind: PiiType, text: str, start: int, end: int) -> PiiSpan:
    while end > start and text[end - 1] in " \t\n,;:":
        end -= 1
    while start < end and text[start] in " \t\n,;:":
        start += 1
    return PiiSpan(kind, start, end, text[start:end])


def _near(cue: re.Pattern[str], text: str, start: int, end: int, before: int, after: int) -> bool:
    """A cue word within `before` characters before the span or `after` characters after it."""
    if before and cue.search(text[max(0, start - before) : start]):
        return True
    return bool(after and cue.search(text[end : end + after]))


# -- payment cards -------------------------------------------------------------------------------------------

_DIGIT_RUN = re.compile(r"(?<![\w+])\d(?:(?:[ \u00a0]{1,3}|[ \u00a0]?[.\-\u2013][ \u00a0]?)?\d){11,23}(?!\w)")
_GROUP = re.compile(r"\d+")
_CARD_BRANDS_FIRST_DIGIT = (
    "23456"  # ISO/IEC 7812 industry identifiers of Mastercard, Amex/Diners/JCB, Visa, ...
)


def _cards(text: str, hints: PiiHints) -> list[PiiSpan]:
    out = []
    for m in _DIGIT_RUN.finditer(text):
        groups = [(m.start() + g.start(), m.start() + g.end()) for g in _GROUP.finditer(m.group())]
        cue = _near(cues.CARD_CUE, text, m.start(), m.end(), 40, 30)
        best: tuple[int, int, int] | None = None
        for i in range(len(groups)):
            for j in range(len(groups), i, -1):
                digits = "".join(text[a:b] for a, b in groups[i:j])
                if not 13 <= len(digits) <= 19 or (best is not None and len(digits) <= best[2]):
                    continue
                if luhn.is_valid(digits) and (cue or digits[0] in _CARD_BRANDS_FIRST_DIGIT):
                    best = (groups[i][0], groups[j - 1][1], len(digits))
        if best is None and cue:  # a mistyped number next to a card word still is a card
            n = sum(ch.isdigit() for ch in m.group())
            if 13 <= n <= 19:
                best = (m.start(), m.end(), n)
        if best is None:
            continue
        if not cue and _near(cues.NOT_CARD_CUE, text, best[0], best[1], 30, 0):
            continue  # a tracking number, barcode or serial that happens to pass Luhn
        out.append(_span(PiiType.card_number, text, best[0], best[1]))
    return out


_SECURITY_CODE = re.compile(
    rf"{cues.SECURITY_CODE_CUE.pattern}[^\d\n]{{0,15}}?(?<!\d)(?P<v>\d{{3,4}})(?!\d)", re.IGNORECASE
)
_EXPIRY = re.compile(r"(?<![\d/.\-])(?P<v>(?:0?[1-9]|1[0-2]) ?[/\-.] ?(?:20\d{2}|\d{2}))(?!\d|[/\-.]\d)")


def _card_extras(text: str, hints: PiiHints) -> list[PiiSpan]:
    out = [
        _span(PiiType.card_security_code, text, m.start("v"), m.end("v"))
        for m in _SECURITY_CODE.finditer(text)
    ]
    for m in _EXPIRY.finditer(text):
        s, e = m.start("v"), m.end("v")
        if _near(cues.EXPIRY_CUE, text, s, e, 25, 0) or _near(cues.CARD_CUE, text, s, e, 60, 30):
            out.append(_span(PiiType.card_expiry, text, s, e))
    return out


# -- IBAN ----------------------------------------------------------------------------------------------------

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ \u00a0\-]?[A-Za-z0-9]){10,32}")
_IBAN_SHAPE = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"
)


def _ibans(text: str, hints: PiiHints) -> list[PiiSpan]:
    out = []
    for m in _IBAN.finditer(text):
        positions = [m.start() + i for i, ch in enumerate(m.group()) if ch.isalnum()]
        compact = "".join(text[p] for p in positions).upper()
        for n in range(min(len(compact), 34), 14, -1):
            if std_iban.is_valid(compact[:n]):
                out.append(_span(PiiType.iban, text, m.start(), positions[n - 1] + 1))
                break
    for m in _IBAN_SHAPE.finditer(text):  # a mistyped IBAN after an IBAN / account cue
        if _near(cues.IBAN_CUE, text, m.start(), m.end(), 30, 0):
            out.append(_span(PiiType.iban, text, m.start(), m.end()))
    return out


# -- e-mail --------------------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+%-])[\w%+-](?:[\w.%+-]*[\w%+-])?@(?:[\w-]+\.)+(?:[^\W\d_]{2,24}|xn--[a-z0-9-]{2,59})(?![\w-])"
)


def _emails(text: str, hints: PiiHints) -> list[PiiSpan]:
    return [_span(PiiType.email, text, m.start(), m.end()) for m in _EMAIL.finditer(text)]


# -- order numbers -------------------------------------------------------------------------------------------

_NUMBER_WORDS = r"number|num|no|nr|n[º°o]|n[uú]mero|nummer|numéro|id|ref|de|do|del|da|di|#"
_ORDER_VALUE = r"(?P<value>[A-Za-z]{0,4}-?\d{4,12}|\d{4,12})"
_ORDER_AFTER_KEYWORD = re.compile(
    rf"\b(?:{cues.ORDER_KEYWORDS})\b(?:[\s.:#º°-]*(?:{_NUMBER_WORDS})(?![^\W\d_]))*[\s.:#º°-]*{_ORDER_VALUE}\b",
    re.IGNORECASE,
)
_ORDER_KEYWORD_AFTER = re.compile(  # `número de pedido 12345`, `Nummer der Bestellung 12345`
    rf"\b(?:n[uú]mero|numéro|nummer|nr|number)\.?\s+(?:de\s+|do\s+|del\s+)?(?:{cues.ORDER_KEYWORDS})\b"
    rf"[\s.:#º°-]*{_ORDER_VALUE}\b",
    re.IGNORECASE,
)
_ORDER_HASH = re.compile(r"(?<![\w#])#(?P<value>[A-Za-z]{0,4}-?\d{3,12})\b")
_ORDER_CODE = re.compile(
    r"(?<![\w-])(?P<value>(?P<prefix>[A-Za-z]{2,4})-\d{4,12})(?![\w-])"
)  # NW-48213, nw-48213


def _orders(text: str, hints: PiiHints) -> list[PiiSpan]:
    out = []
    for pattern in (_ORDER_AFTER_KEYWORD, _ORDER_KEYWORD_AFTER, _ORDER_HASH):
        out += [
            _span(PiiType.order_number, text, m.start("value"), m.end("value"))
            for m in pattern.finditer(text)
        ]
    for m in _ORDER_CODE.finditer(text):
        if cues.PRODUCT_CODE_CUE.fullmatch(m.group("prefix")) or _near(
            cues.PRODUCT_CODE_CUE, text, m.start(), m.end(), 25, 0
        ):
            continue  # SKU-48213, ISO-9001: a product or standard, not the customer's order
        out.append(_span(PiiType.order_number, text, m.start("value"), m.end("value")))
    return out


# -- phone numbers -------------------------------------------------------------------------------------------

_IDD_00 = re.compile(r"(?<![\d+])00(?=[1-9]\d)")
_MAX_REGIONS = 4


def _phones(text: str, hints: PiiHints) -> list[PiiSpan]:
    if sum(ch.isdigit() for ch in text) < 6:
        return []
    # `0044 20 ...` is read as `+44 20 ...` whatever the region: same length, so offsets stay valid
    masked = _IDD_00.sub(" +", text)
    regions: list[str | None] = [None]
    regions += [r for r in hints.regions() if r in phonenumbers.SUPPORTED_REGIONS][:_MAX_REGIONS]
    leniencies = [Leniency.VALID]
    if cues.PHONE_CUE.search(text):
        leniencies.append(
            Leniency.POSSIBLE
        )  # a cue ("call me on") vouches for a number the plan doesn't know
    out: dict[tuple[int, int], PiiSpan] = {}
    for leniency in leniencies:
        for region in regions:
            for match in PhoneNumberMatcher(masked, region, leniency=leniency):
                start, end = match.start, match.end
                if masked[start] == "+" and text[start] == "0":
                    start -= 1
                if leniency is Leniency.POSSIBLE and (
                    sum(ch.isdigit() for ch in match.raw_string) < 8
                    or not _near(cues.PHONE_CUE, text, start, end, 30, 0)
                ):
                    continue
                start, end = _glued_digits(text, start, end)
                out.setdefault((start, end), _span(PiiType.phone, text, start, end))
    return list(out.values())


_GROUP_BEFORE = re.compile(r"(?:\d+[ .\-/])+$")
_GROUP_AFTER = re.compile(r"(?:[ .\-/]\d+)+")


def _glued_digits(text: str, start: int, end: int) -> tuple[int, int]:
    """Digit groups written right against a number read in part (`0151 [23456789]`) belong to it."""
    before = _GROUP_BEFORE.search(text[max(0, start - 12) : start])
    if before is not None and (
        start - len(before.group()) == 0 or not text[start - len(before.group()) - 1].isalnum()
    ):
        start -= len(before.group())
    after = _GROUP_AFTER.match(text, end)
    if after is not None and len(after.group()) <= 8 and not text[after.end() : after.end() + 1].isalnum():
        end = after.end()
    return start, end


# -- street addresses and postcodes --------------------------------------------------------------------------

_TOKEN = r"[^\W\d_][\w'’.\-]*"
_UNIT_AFTER = re.compile(
    r"\s*(?:€|\$|£|%|eur|euro|euros|usd|kg|g|cm|mm|m|km|ml|l|x|pcs|items?|units?|times|days?|hours?|weeks?|"
    r"months?|years?|veces|d[ií]as|horas?|semanas?|meses|años|unidades|tage?n?|stunden?|mal|wochen?|monate?n?|"
    r"jahre?n?|stück|jours?|heures?|fois|semaines?|mois|ans|vezes|meses|anos|giorni|ore|volte|settimane|mesi|"
    r"anni|dagen|uur|keer|weken|maanden|jaar)\b",
    re.IGNORECASE,
)
_STREET_FIRST_WORDS = (
    r"calle|c/|avda\.?|avenida|av\.|avd\.|paseo|p[º°]|plaza|pza\.?|camino|carrer|ronda|traves[ií]a|carretera|"
    r"glorieta|rua|r\.|travessa|pra[çc]a|largo|estrada|alameda|via|viale|piazza|p\.zza|corso|vicolo|strada|"
    r"piazzale|lungomare"
)
_STREET_FIRST = re.compile(
    rf"{_WORD_START}(?:{_STREET_FIRST_WORDS})\s+(?P<name>{_TOKEN}(?:\s+{_TOKEN}){{0,5}}?)\s*,?\s*"
    rf"(?:n\.?\s?[º°o]\.?\s*|n[º°]\s*|no\.?\s+)?(?P<num>\d{{1,4}}[A-Za-z]?)(?![\d\w])",
    re.IGNORECASE,
)
_EN_STREET_WORDS = (
    r"street|st|avenue|ave|road|rd|lane|ln|drive|dr|way|boulevard|blvd|place|pl|court|ct|close|crescent|"
    r"terrace|square|sq|parkway|pkwy|highway|hwy|row|mews|grove|gardens|walk|hill"
)
_NUMBER_FIRST_EN = re.compile(
    rf"(?<![\w.,/-])(?P<num>\d{{1,5}}[A-Za-z]?),?\s+(?P<name>(?:{_TOKEN}\s+){{1,4}})(?:{_EN_STREET_WORDS})\.?{_WORD_END}",
    re.IGNORECASE,
)
_NUMBER_FIRST_FR = re.compile(
    rf"(?<![\w.,/-])(?P<num>\d{{1,4}}(?:\s?(?:bis|ter))?),?\s+"
    rf"(?:rue|avenue|av\.|boulevard|bd|chemin|allée|allee|place|impasse|quai|cours|route|square|passage)\s+"
    rf"(?P<name>{_TOKEN}(?:\s+{_TOKEN}){{0,4}})",
    re.IGNORECASE,
)
_COMPOUND_STREET = re.compile(
    rf"{_WORD_START}(?:(?-i:[A-ZÄÖÜ])[\wäöüß\-]+\s+)?[^\W\d_]*?"
    r"(?:straße|strasse|str\.|weg|gasse|allee|platz|damm|ufer|chaussee|straat|laan|plein|gracht|kade|singel|dijk|steeg)"
    rf"\s+(?P<num>\d{{1,4}}(?:\s?[a-zA-Z])?)(?![\w])",
    re.IGNORECASE,
)


def _plain_tokens(name: str) -> list[str]:
    return [t.strip(".'’-").lower() for t in name.split()]


def _street_tokens_ok(name: str) -> bool:
    return all(t not in cues.STREET_STOP or t in cues.NAME_PARTICLES for t in _plain_tokens(name))


def _addresses(text: str, hints: PiiHints) -> list[PiiSpan]:
    out = []
    for pattern in (_STREET_FIRST, _NUMBER_FIRST_EN, _COMPOUND_STREET):
        for m in pattern.finditer(text):
            name = m.groupdict().get("name") or ""
            if not _street_tokens_ok(name) or _UNIT_AFTER.match(text, m.end()):
                continue
            out.append(_span(PiiType.street_address, text, m.start(), m.end()))
    for m in _NUMBER_FIRST_FR.finditer(text):
        kept: list[str] = []
        for token in m.group("name").split():
            bare = token.strip(".'’-").lower()
            if bare in cues.STREET_STOP and bare not in cues.NAME_PARTICLES:
                break
            kept.append(token)
        while kept and kept[-1].lower() in cues.NAME_PARTICLES:
            kept.pop()
        if kept:
            end = _end_of_tokens(text, m.start("name"), len(kept))
            out.append(_span(PiiType.street_address, text, m.start(), end))
    return out


def _end_of_tokens(text: str, start: int, n: int) -> int:
    """End offset of the first `n` whitespace-separated tokens from `start`."""
    pos = start
    for _ in range(n):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        while pos < len(text) and not text[pos].isspace():
            pos += 1
    while pos > start and text[pos - 1] in ",.;:!?)":
        pos -= 1
    return pos


_UK_POSTCODE = re.compile(r"(?<![\w])[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}(?![\w])", re.IGNORECASE)
_NL_POSTCODE = re.compile(r"(?<![\w])[1-9]\d{3} ?(?!SA|SD|SS)[A-Z]{2}(?![\w])")
_PT_POSTCODE = re.compile(r"(?<![\d\-])\d{4}-\d{3}(?![\d\-])")
_BR_CEP = re.compile(r"(?<![\d\-])\d{5}-\d{3}(?![\d\-])")
_US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|"
    "OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY"
)
_US_ZIP = re.compile(rf"(?<![\w])(?:{_US_STATES}) (?P<v>\d{{5}}(?:-\d{{4}})?)(?![\d\-])")
_FIVE_DIGITS_CITY = re.compile(r"(?<![\w.,\-])(?:[A-Z]-)?(?P<v>\d{5})\s+(?P<city>[A-ZÀ-ÖØ-Þ][\w'’\-]+)")
_POSTCODE_AFTER_CUE = re.compile(
    rf"{cues.POSTCODE_CUE.pattern}\s*[:.]?\s*"
    rf"(?P<v>\d{{4,5}}(?:-\d{{3,4}})?|[A-Z]{{1,2}}\d[A-Z\d]? ?\d[A-Z]{{2}}|\d{{4}} ?[A-Z]{{2}})(?![\w])",
    re.IGNORECASE,
)
_NOT_A_CITY = re.compile(
    r"(?:euros?|eur|pesos|dollars?|usd|reais|francs?|pfund|punkte|points|puntos|pontos|punti|punten|stück|"
    r"unidades|units|items|pieces|pezzi|stuks|meilen|miles|km|kilometer|kilómetros|quilómetros|chilometri|"
    r"[A-Z]{2,})$"
)


def _postcodes(text: str, hints: PiiHints) -> list[PiiSpan]:
    out = []
    for pattern in (_UK_POSTCODE, _NL_POSTCODE, _PT_POSTCODE, _BR_CEP):
        out += [_span(PiiType.postcode, text, m.start(), m.end()) for m in pattern.finditer(text)]
    for m in _US_ZIP.finditer(text):
        out.append(_span(PiiType.postcode, text, m.start(), m.end()))
    for m in _FIVE_DIGITS_CITY.finditer(text):
        if not _NOT_A_CITY.match(m.group("city")) and not _near(
            cues.ORDER_CUE, text, m.start(), m.end(), 25, 0
        ):
            out.append(_span(PiiType.postcode, text, m.start("v"), m.end("v")))
    for m in _POSTCODE_AFTER_CUE.finditer(text):
        out.append(_span(PiiType.postcode, text, m.start("v"), m.end("v")))
    return out


# -- dates of birth ------------------------------------------------------------------------------------------

_MONTHS = (
    r"january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|"
    r"enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre|"
    r"januar|jänner|februar|märz|maerz|mai|juni|juli|oktober|dezember|"
    r"janvier|février|fevrier|mars|avril|juin|juillet|août|aout|septembre|octobre|novembre|décembre|decembre|"
    r"janeiro|fevereiro|março|marco|maio|junho|julho|setembro|outubro|novembro|dezembro|"
    r"gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre|"
    r"januari|februari|maart|mei|augustus|oktober"
)
_DATE = re.compile(
    r"(?<![\d/.\-])(?:\d{1,2}[./\-]\d{1,2}[./\-](?:\d{4}|\d{2})|\d{4}-\d{2}-\d{2})(?!\d|[/\-.]\d)"
    rf"|{_WORD_START}\d{{1,2}}(?:st|nd|rd|th|º|er)?\.?\s+(?:de\s+)?(?:{_MONTHS})\.?,?\s+(?:de\s+)?\d{{4}}(?!\d)"
    rf"|{_WORD_START}(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}(?!\d)",
    re.IGNORECASE,
)


def _birth_dates(text: str, hints: PiiHints) -> list[PiiSpan]:
    return [
        _span(PiiType.date_of_birth, text, m.start(), m.end())
        for m in _DATE.finditer(text)
        if _near(cues.BIRTH_CUE, text, m.start(), m.end(), 35, 25)
    ]


# -- national identifiers ------------------------------------------------------------------------------------

# (shape, validator, needs a cue): a checksum alone is enough for shapes that ordinary numbers rarely take
_NATIONAL_IDS: list[tuple[re.Pattern[str], Callable[[str], bool], bool]] = [
    (re.compile(r"(?<![\w])\d{8}[ \-]?[A-Za-z](?![\w])"), dni.is_valid, False),  # ES DNI
    (re.compile(r"(?<![\w])[XYZxyz][ \-]?\d{7}[ \-]?[A-Za-z](?![\w])"), nie.is_valid, False),  # ES NIE
    (
        re.compile(
            r"(?<![\w])[A-Za-z]{6}[\dA-Za-z]{2}[A-Za-z][\dA-Za-z]{2}[A-Za-z][\dA-Za-z]{3}[A-Za-z](?![\w])"
        ),
        codicefiscale.is_valid,
        False,
    ),  # IT codice fiscale
    (re.compile(r"(?<![\w\-])\d{3}-\d{2}-\d{4}(?![\w\-])"), ssn.is_valid, False),  # US SSN
    (
        re.compile(r"(?<![\w])[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?![\w])"),
        nir.is_valid,
        False,
    ),
    (re.compile(r"(?<![\w.])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w])"), cpf.is_valid, False),  # BR CPF
    (re.compile(r"(?<![\w])\d{2} ?\d{3} ?\d{3} ?\d{3}(?![\w])"), idnr.is_valid, True),  # DE Steuer-ID
    (
        re.compile(r"(?<![\w])\d{9}(?![\w])"),
        lambda v: nif.is_valid(v) or bsn.is_valid(v) or ssn.is_valid(v),
        True,
    ),
]
_UK_NINO = re.compile(
    r"(?<![\w])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w])"
)
_ID_AFTER_CUE = re.compile(
    rf"{cues.NATIONAL_ID_CUE.pattern}(?:\s*(?:number|no\.?|nr\.?|n[º°]|número|numero|numéro|nummer|is|es|ist|est|"
    rf"é|è|:|#|-)\s*){{0,3}}\s*"
    rf"(?P<v>(?:[A-Za-z]{{1,3}}[ \-]?)?\w*\d\w*(?:[ ./\-]\w*\d\w*)*(?:[ \-][A-Za-z](?![\w]))?)",
    re.IGNORECASE,
)


def _national_ids(text: str, hints: PiiHints) -> list[PiiSpan]:
    out = []
    for pattern, valid, needs_cue in _NATIONAL_IDS:
        for m in pattern.finditer(text):
            if valid(m.group()) and (
                not needs_cue or _near(cues.NATIONAL_ID_CUE, text, m.start(), m.end(), 30, 0)
            ):
                out.append(_span(PiiType.national_id, text, m.start(), m.end()))
    out += [_span(PiiType.national_id, text, m.start(), m.end()) for m in _UK_NINO.finditer(text)]
    for m in _ID_AFTER_CUE.finditer(text):
        value = m.group("v")
        if 4 <= sum(ch.isdigit() for ch in value) <= 20:
            out.append(_span(PiiType.national_id, text, m.start("v"), m.end("v")))
    return out


# -- passwords, PINs, one-time codes -------------------------------------------------------------------------

_PASSWORD = re.compile(
    rf"{cues.PASSWORD_CUE.pattern}(?:{cues.PASSWORD_LINK})[\"'“‘«]?(?P<v>[^\s\"'”’»]+)", re.IGNORECASE
)
_NOT_A_SECRET = frozenset(
    """not no wrong incorrect invalid expired correct right blocked locked the my a an it reset
    nicht falsch gesperrt abgelaufen pas faux incorrect incorrecte bloqué expiré não errada errado bloqueada
    non sbagliata sbagliato bloccata scaduta niet fout geblokkeerd verlopen incorrecta inválida invalida
    bloqueado caducada mal""".split()
)


_CODE_LATER = re.compile(
    rf"{cues.CODE_CUE.pattern}[^\d\n.!?]{{1,24}}?(?<![\w])(?P<v>\d{{4,8}})(?![\w])", re.IGNORECASE
)


# a lowercase word ending like a participle (changed, cambiada, geändert, changé, alterada, cambiata) after
# the cue describes the password; a real one written in plain lowercase letters still counts
_PARTICIPLE = re.compile(r"[a-zà-ÿ]+(?:ed|ado|ada|ido|ida|ato|ata|ito|ita|é|ée|és)|ge[a-zäöü]+t")


def _passwords(text: str, hints: PiiHints) -> list[PiiSpan]:
    out = [_span(PiiType.password, text, m.start("v"), m.end("v")) for m in _CODE_LATER.finditer(text)]
    for m in _PASSWORD.finditer(text):
        start, end = m.start("v"), m.end("v")
        while end > start and text[end - 1] in ".,;:)":
            end -= 1
        value = text[start:end]
        if len(value) < 3 or value.lower() in _NOT_A_SECRET or _PARTICIPLE.fullmatch(value):
            continue  # "my password was changed": a state, not the secret
        out.append(_span(PiiType.password, text, start, end))
    return out


# -- the customer's name -------------------------------------------------------------------------------------

_NAME_TOKEN = re.compile(r"[^\W\d_][\w'’\-]*")
_INTRO = re.compile(
    rf"{_WORD_START}(?:{cues.NAME_INTRO})\s+(?P<name>{_TOKEN}(?:\s+{_TOKEN}){{0,3}})", re.IGNORECASE
)
_CAP = r"[A-ZÀ-ÖØ-ÞĀ-Ž][\w'’\-]+"
_SIGN_OFF = re.compile(
    rf"(?:^|[.!?]\s+)(?i:{cues.SIGN_OFF})[,!.]?[ \t]*(?:\n[ \t]*)?-?[ \t]*"
    rf"(?P<name>{_CAP}(?:[ \t]+(?:(?:de|da|do|dos|del|di|van|von|der|le|la)[ \t]+)?{_CAP}){{0,2}})"
    r"[ \t]*[.!]?[ \t]*$",
    re.MULTILINE,
)
_NOT_A_NAME = frozenset(
    """wrong misspelled spelled incorrect not on in the a an mal falsch faux errado sbagliato fout also
    still here there""".split()
)


def fold(text: str) -> tuple[str, list[int]]:
    """Case- and accent-folded text, with the offset in `text` of every folded character."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        folded = unicodedata.normalize("NFD", ch.casefold()).replace("’", "'")
        for c in folded:
            if not unicodedata.combining(c):
                out.append(c)
                index.append(i)
    return "".join(out), index


def name_tokens(name: str) -> list[str]:
    """The parts of a display name worth looking for: words of 2+ letters that are not particles."""
    return [t for t in _NAME_TOKEN.findall(name) if len(t) >= 2 and t.lower() not in cues.NAME_PARTICLES]


def _names(text: str, hints: PiiHints) -> list[PiiSpan]:
    out = []
    tokens = {fold(t)[0] for n in hints.names for t in name_tokens(n)}
    if tokens:
        folded, index = fold(text)
        pattern = re.compile(
            r"(?<![^\W_])(?:"
            + "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
            + r")(?![^\W_])"
        )
        for m in pattern.finditer(folded):
            out.append(_span(PiiType.person_name, text, index[m.start()], index[m.end() - 1] + 1))
    for m in _INTRO.finditer(text):
        kept = []
        for token in m.group("name").split():
            bare = token.strip(".,;:!?'’").lower()
            if (bare in cues.STREET_STOP and bare not in cues.NAME_PARTICLES) or bare in _NOT_A_NAME:
                break
            kept.append(token)
        while kept and kept[-1].lower() in cues.NAME_PARTICLES:
            kept.pop()
        if kept:
            out.append(
                _span(
                    PiiType.person_name,
                    text,
                    m.start("name"),
                    _end_of_tokens(text, m.start("name"), len(kept)),
                )
            )
    for m in _SIGN_OFF.finditer(text):
        out.append(_span(PiiType.person_name, text, m.start("name"), m.end("name")))
    return out


DETECTORS: list[Detector] = [
    _passwords,
    _ibans,
    _national_ids,
    _cards,
    _card_extras,
    _emails,
    _birth_dates,
    _orders,
    _phones,
    _addresses,
    _postcodes,
    _names,
]


def payment_spans(text: str) -> list[PiiSpan]:
    """Cards and IBANs only (what a draft must never show in clear)."""
    hints = PiiHints()
    return resolve([*_ibans(text, hints), *_cards(text, hints)])
