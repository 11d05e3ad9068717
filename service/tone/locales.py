"""Locale tags (BCP 47, loosely) and matching them against rule culture codes."""

from __future__ import annotations

import locale as _stdlib_locale
import re
from dataclasses import dataclass
from functools import cache

# language[-script][-region][-variants…]; `_` accepted as separator (en_US), encodings (.UTF-8) are not tags.
LOCALE_PATTERN = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")
_REGION = re.compile(r"[A-Za-z]{2}|[0-9]{3}")
_SCRIPT = re.compile(r"[A-Za-z]{4}")
# Languages with many speakers that the C library's alias table happens to lack.
_EXTRA_LANGUAGES = frozenset({"ps", "yo", "ha", "ig", "sw", "am", "fil", "yue", "jv", "su", "so", "ku"})


@dataclass(frozen=True, slots=True)
class LocaleInfo:
    tag: str  # normalised: `zh-Hant-TW`
    language: str  # `zh`
    region: str | None  # `TW`
    recognised: bool  # the language is a known one

    def matches(self, code: str) -> bool:
        """Does a culture code (`*`, `ar`, `SA`, `pt-BR`) cover this locale?"""
        if code == "*":
            return True
        if "-" in code:
            lang, _, region = code.partition("-")
            return lang.lower() == self.language and self.region == region.upper()
        if code.islower():
            return code == self.language
        return code == self.region

    def matches_any(self, codes: list[str] | tuple[str, ...]) -> list[str]:
        return [c for c in codes if self.matches(c)]


@cache
def _known_languages() -> frozenset[str]:
    """Language codes the C library's locale alias table knows (about 150: every widely used language)."""
    langs = {key.split("_")[0].split(".")[0].split("@")[0] for key in _stdlib_locale.locale_alias}
    return frozenset(code for code in langs if code.isalpha() and 2 <= len(code) <= 3)


@cache
def parse_locale(tag: str) -> LocaleInfo | None:
    """Normalise a locale tag; None when it is not one (`english`, `12`, `en US`)."""
    tag = tag.strip().split(".")[0].split("@")[0]
    if not LOCALE_PATTERN.fullmatch(tag):
        return None
    parts = re.split(r"[-_]", tag)
    language = parts[0].lower()
    out = [language]
    region = None
    for part in parts[1:]:
        if region is None and len(out) == 1 and _SCRIPT.fullmatch(part):
            out.append(part.title())
        elif region is None and _REGION.fullmatch(part):
            region = part.upper()
            out.append(region)
        else:
            out.append(part)
    recognised = language in _known_languages() or language in _EXTRA_LANGUAGES
    return LocaleInfo(tag="-".join(out), language=language, region=region, recognised=recognised)
