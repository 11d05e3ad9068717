"""Language of a customer message: langdetect for real sentences, a word vote for chat-length ones, then
fallbacks. The result is a BCP 47 tag: a language (`es`, `ja`) or a romanised variety (`hi-Latn`, `ar-Latn`).

Statistical detection is meaningless on `hola` or `ok 👍` (langdetect calls `hola` Welsh with 0.99999), so:

1. the message itself decides when it is long enough (langdetect, seed fixed) or when its words are
unmistakable
   (`gracias`, `danke`, `merci beaucoup`): `source="text"`;
2. otherwise the customer's earlier messages in the thread: `source="history"`;
3. otherwise the channel's locale hint (`es-MX` → `es`): `source="locale"`;
4. otherwise `Settings.default_locale`: `source="default"`.

Romanised and code-mixed messages (`lexicons/romanised.json`) are decided by their words before langdetect,
which calls Hinglish English or noise (`so`, `sw`) and Arabizi Hungarian or Catalan:

* `hi-Latn` (Hinglish) and `ar-Latn` (Arabizi: `3ayez`, `ma5zan`, digits as letters, plus dialect words);
* `tl` for Tagalog and Taglish: Filipinos write Tagalog with English mixed in, and a Tagalog-led reply with
  the English terms kept is what they expect;
* Spanglish is not a tag of its own: the language that supplies the function words (the matrix language, in
  Myers-Scotton's terms) decides, so `quiero saber el status de mi order` is `es` and gets a Spanish reply
  (there is no written Spanglish register a brand could answer in, and mirroring the mix reads as mimicry),
  while `my pedido never came` stays `en`. The same rule makes Taglish `tl` and Hinglish `hi-Latn`: a variety
  wins only when its own words outnumber the English ones the customer mixed in (`VARIETY_EN_RATIO`).
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from langdetect import DetectorFactory
from langdetect.detector_factory import init_factory
from langdetect.lang_detect_exception import LangDetectException

from service.triage.models import Language

LEXICON_DIR = Path(__file__).resolve().parent / "lexicons"

# A message shorter than this (in letters; one CJK/kana/hangul character counts as 3) or with at most
# SHORT_TOKENS words is decided by the word vote only, unless it is written in a non-Latin script.
SHORT_LETTERS = 15
SHORT_TOKENS = 3
# Latin letters of languages without word lists (vi, tr, pl, ro...): with two, the word votes do not decide
_FOREIGN_LATIN = re.compile(
    "[\u1ea0-\u1ef9\u01a1\u01b0\u0111\u0131\u011f\u015f\u0142\u0105\u0119\u017c\u017a\u0144\u0107\u015b\u0219\u021b]"
)
FOREIGN_LETTERS = 2
MIN_LETTERS = 2
ACCEPT_PROB = 0.90  # langdetect probability accepted without corroboration
COMBINED_ACCEPT = 0.60
VOTE_MARGIN = 2  # frequent-word votes overrule langdetect when they lead by this many words
# A sentence whose frequent words all but unanimously name one language (at least DECISIVE_VOTES distinct
# words,
# DECISIVE_SHARE of its words, and DECISIVE_RATIO times the runner-up's votes) is decided without langdetect,
# which costs ~4 ms a message; the vote agreed with the full detector on every such message of the eval sets.
DECISIVE_VOTES = 3
DECISIVE_SHARE = 0.3
DECISIVE_RATIO = 3
HISTORY_MESSAGES = 5
MAX_DETECT_CHARS = 600  # langdetect's cost grows with length; the first 600 characters are plenty
LANGDETECT_TRIALS = 4  # langdetect's default is 7; 4 gave identical answers on 670 messages, 40% faster
LOCALE_CONFIDENCE = 0.6
DEFAULT_CONFIDENCE = 0.3

_NOISE = re.compile(
    r"https?://\S+|www\.\S+|\S+@\S+|[@#]\S+|\b[A-Z]{1,4}-?\d[\w-]*|\d+",
)
_TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_CODE = {"zh-cn": "zh", "zh-tw": "zh"}
# Romanised varieties (module doc). A variety decides when its votes (a word 1, a marker `marker_votes`, an
# Arabizi digit-spelt word DIGIT_WORD_VOTES) reach VARIETY_MIN_VOTES, beat every other variety and every other
# listed language, reach VARIETY_EN_RATIO times the English votes and VARIETY_SHARE of the words; tuned on
# eval/data/multilingual_dev.jsonl only.
VARIETY_MIN_VOTES = 2
VARIETY_EN_RATIO = 1.0
VARIETY_SHARE = 0.2
DIGIT_WORD_VOTES = 2
_NOISE_NOT_DIGITS = re.compile(r"https?://\S+|www\.\S+|\S+@\S+|[@#]\S+|\b[A-Z]{1,4}-?\d[\w-]*")
_DIGITS = re.compile(r"\d+")
_WORD_WITH_DIGITS = re.compile(r"[^\W_]+")
# BCP 47 tags the service uses for languages other tags name too: Filipino (`fil-PH`) is written as Tagalog.
_TAG_ALIAS = {"fil": "tl"}
_WIDE_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL")


def primary_subtag(locale: str | None) -> str | None:
    """`es-MX` / `pt_BR` / `zh-Hant-TW` → `es` / `pt` / `zh`; None for anything that is not a language tag."""
    if not locale:
        return None
    head = re.split(r"[-_]", locale.strip(), maxsplit=1)[0].lower()
    return head if head.isascii() and head.isalpha() and 2 <= len(head) <= 3 else None


def normalise_code(code: str) -> str:
    return _CODE.get(code.lower(), code.lower())


def canonical_tag(tag: str | None) -> str | None:
    """A BCP 47 tag in the service's spelling: `HI-latn` / `hi_Latn_IN` → `hi-Latn-IN`, `fil-PH` → `tl-PH`,
    `zh-CN` → `zh-CN`; None for anything that is not a language tag."""
    primary = primary_subtag(tag)
    if primary is None or tag is None:
        return None
    out = [_TAG_ALIAS.get(primary, primary)]
    for part in re.split(r"[-_]", tag.strip())[1:]:
        if len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif len(part) == 2 and part.isalpha():
            out.append(part.upper())
        else:
            out.append(part)
    return "-".join(out)


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@cache
def _word_lexicon() -> dict[str, frozenset[str]]:
    raw = json.loads((LEXICON_DIR / "language_words.json").read_text(encoding="utf-8"))
    return {
        lang: frozenset(strip_accents(w).lower() for w in words)
        for lang, words in raw.items()
        if not lang.startswith("_")
    }


@dataclass(frozen=True)
class Variety:
    """A romanised or code-mixed variety (`lexicons/romanised.json`)."""

    tag: str
    words: frozenset[str]
    markers: frozenset[str]
    digit_letters: str = ""  # Arabizi: digits written as letters
    not_digit_words: frozenset[str] = frozenset()  # `2day`, `mp3`: digits inside, but not Arabizi
    unit_suffixes: frozenset[str] = frozenset()  # `3rd`, `5g`, `7pm`

    def digit_words(self, words: set[str]) -> set[str]:
        """Words spelt with this variety's letter digits (`3ayez`, `ma5zan`, `2olt`; not `3rd`, `mp3`)."""
        if not self.digit_letters:
            return set()
        out = set()
        for w in words:
            if w in self.not_digit_words or not any(ch.isalpha() for ch in w):
                continue
            digit_before_letter = any(
                ch in self.digit_letters and nxt.isalpha() for ch, nxt in zip(w, w[1:], strict=False)
            )
            if not digit_before_letter:
                continue
            if w[0].isdigit() and w.lstrip("0123456789") in self.unit_suffixes:
                continue
            out.add(w)
        return out


@cache
def _varieties() -> tuple[int, tuple[Variety, ...]]:
    """(votes of a marker word, the varieties)."""
    raw = json.loads((LEXICON_DIR / "romanised.json").read_text(encoding="utf-8"))

    def words(key: str, spec: dict) -> frozenset[str]:
        return frozenset(strip_accents(w).lower() for w in spec.get(key, ()))

    varieties = tuple(
        Variety(
            tag=tag,
            words=words("words", spec) | words("markers", spec),
            markers=words("markers", spec),
            digit_letters=spec.get("digit_letters", ""),
            not_digit_words=words("not_arabizi", spec),
            unit_suffixes=words("unit_suffixes", spec),
        )
        for tag, spec in raw.items()
        if isinstance(spec, dict)
    )
    return int(raw.get("marker_votes", 1)), varieties


def variety_tags() -> frozenset[str]:
    """The romanised/code-mixed tags the detector can return (`hi-Latn`, `ar-Latn`, `tl`)."""
    return frozenset(v.tag for v in _varieties()[1])


_factory_lock = threading.Lock()


def _factory():
    """langdetect's profile store, loaded once (about 0.5 s) with a fixed seed so results are reproducible."""
    from langdetect import detector_factory

    with _factory_lock:
        if detector_factory._factory is None:
            DetectorFactory.seed = 0
            init_factory()
    return detector_factory._factory


def _letters(text: str) -> tuple[int, int]:
    """(effective letter count, non-Latin letter count)."""
    total = non_latin = 0
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        wide = name.startswith(_WIDE_SCRIPTS)
        total += 3 if wide else 1
        if not name.startswith("LATIN"):
            non_latin += 3 if wide else 1
    return total, non_latin


class LanguageDetector:
    """Thread-safe; build once per process (`TriageService` does)."""

    def __init__(self, default_locale: str = "en") -> None:
        self.default_code = canonical_tag(primary_subtag(default_locale)) or "en"
        self._words = _word_lexicon()
        self._marker_votes, self._varieties = _varieties()
        self._tags = frozenset(v.tag for v in self._varieties)

    def warm_up(self) -> None:
        _factory()

    def detect(self, text: str, history: Sequence[str] = (), locale: str | None = None) -> Language:
        hint = canonical_tag(primary_subtag(locale))
        found = self.detect_text(text, hint)
        if found:
            return Language(code=found[0], confidence=round(found[1], 3), source="text")
        recent = [h for h in history if h and h.strip()][-HISTORY_MESSAGES:]
        if recent:
            found = self.detect_text(" \n".join(recent), hint)
            if found:
                return Language(code=found[0], confidence=round(found[1] * 0.9, 3), source="history")
        if hint:
            return Language(code=hint, confidence=LOCALE_CONFIDENCE, source="locale")
        return Language(code=self.default_code, confidence=DEFAULT_CONFIDENCE, source="default")

    # -- the message itself ---------------------------------------------------------------------------------

    def detect_text(self, text: str, hint: str | None = None) -> tuple[str, float] | None:
        """(code, confidence) when the text alone settles its language, else None."""
        with_digits = _NOISE_NOT_DIGITS.sub(" ", text[: MAX_DETECT_CHARS * 2])
        clean = _DIGITS.sub(" ", with_digits)
        letters, non_latin = _letters(clean)
        if letters < MIN_LETTERS:
            return None
        tokens = [strip_accents(t).lower().replace("’", "").replace("'", "") for t in _TOKEN.findall(clean)]
        votes = self._votes(tokens)
        if non_latin * 2 > letters:  # the script carries the decision even for a couple of characters
            probs = self._langdetect(clean)
            if probs:
                code, p = max(probs.items(), key=lambda kv: kv[1])
                if p >= 0.4:
                    return code, p
            return None
        # Romanised varieties are typed in plain ASCII; accented letters (Vietnamese `hai`, Polish `na`) mean
        # a language that writes them.
        accented = sum(1 for ch in clean if ch.isalpha() and not ch.isascii())
        varieties = self.variety_votes(with_digits, tokens)
        variety = self._variety(with_digits, varieties, votes) if accented < FOREIGN_LETTERS else None
        if variety:
            return variety
        if len(tokens) <= SHORT_TOKENS or letters < SHORT_LETTERS:
            return self._from_votes(votes, hint, len(tokens))
        # Letters no word-listed language writes (Vietnamese ơ ư đ ạ ế, Turkish ı ğ ş, Polish ł ą ę ż): once
        # stripped of accents such words can look like a listed language's (Vietnamese `don`, `cho`, `ma`
        # vote French), so the votes do not decide alone.
        foreign = len(_FOREIGN_LATIN.findall(clean.lower())) >= FOREIGN_LETTERS
        decisive = None if foreign else self._decisive(votes, len(tokens))
        if decisive:
            return decisive
        probs = self._langdetect(clean)
        for tag in self._tags & probs.keys():
            # langdetect calls short English questions Tagalog now and then (`who pay your salary`); with a
            # Tagalog template that would be a Tagalog reply, so its `tl` needs Tagalog words too
            if varieties.get(tag, 0) < VARIETY_MIN_VOTES:
                del probs[tag]
        if not probs:
            return self._from_votes(votes, hint, len(tokens))
        code, p = max(probs.items(), key=lambda kv: kv[1])
        voted = self._from_votes(votes, hint, len(tokens))
        if voted and not foreign and votes[voted[0]] >= votes.get(code, 0) + VOTE_MARGIN:
            return (
                voted  # `donde esta mi pedido` without accents: langdetect says pt, four Spanish words say es
            )
        if p >= ACCEPT_PROB and (not votes or votes.get(code, 0) > 0 or len(tokens) > 6):
            return code, p
        n = max(len(tokens), 1)
        scores = {
            lang: probs.get(lang, 0.0) + votes.get(lang, 0) / n + (0.1 if lang == hint else 0.0)
            for lang in set(probs) | set(votes)
        }
        best, score = max(scores.items(), key=lambda kv: (kv[1], kv[0] == hint))
        if score >= COMBINED_ACCEPT:
            return best, min(0.95, score)
        return None

    def variety_votes(self, text_with_digits: str, tokens: list[str]) -> Counter[str]:
        """Votes per romanised variety: a listed word 1, a marker `marker_votes`, an Arabizi digit-spelt word
        DIGIT_WORD_VOTES (listed or not)."""
        plain = set(tokens)
        spelt = {
            strip_accents(w).lower()
            for w in _WORD_WITH_DIGITS.findall(text_with_digits)
            if any(ch.isdigit() for ch in w)
        }
        votes: Counter[str] = Counter()
        for v in self._varieties:
            hits = (plain | spelt) & v.words
            digit_words = v.digit_words(spelt)
            score = len(hits - digit_words) + (self._marker_votes - 1) * len(hits & v.markers)
            score += DIGIT_WORD_VOTES * len(digit_words)
            if score:
                votes[v.tag] = score
        return votes

    @staticmethod
    def _variety(
        text_with_digits: str, scores: Counter[str], votes: Counter[str]
    ) -> tuple[str, float] | None:
        """A romanised variety when its words clearly lead (module doc), else None."""
        if not scores:
            return None
        ranked = scores.most_common(2)
        tag, top = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else 0
        n_words = len(_WORD_WITH_DIGITS.findall(text_with_digits)) or 1
        other = max((v for lang, v in votes.items() if lang != "en"), default=0)
        if (
            top < VARIETY_MIN_VOTES
            or top <= runner_up
            or top <= other
            or top < VARIETY_EN_RATIO * votes.get("en", 0)
            or top < VARIETY_SHARE * n_words
        ):
            return None
        return tag, round(min(0.95, 0.6 + 0.35 * min(1.0, top / n_words)), 3)

    def _votes(self, tokens: list[str]) -> Counter[str]:
        votes: Counter[str] = Counter()
        for tok in set(tokens):
            for lang, words in self._words.items():
                if tok in words:
                    votes[lang] += 1
        return votes

    @staticmethod
    def _decisive(votes: Counter[str], n_tokens: int) -> tuple[str, float] | None:
        ranked = votes.most_common(2)
        if not ranked:
            return None
        lang, top = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else 0
        if top >= DECISIVE_VOTES and top >= DECISIVE_SHARE * n_tokens and top >= DECISIVE_RATIO * runner_up:
            return lang, round(min(0.97, 0.7 + 0.3 * top / n_tokens), 3)
        return None

    @staticmethod
    def _from_votes(votes: Counter[str], hint: str | None, n_tokens: int) -> tuple[str, float] | None:
        if not votes:
            return None
        top = max(votes.values())
        leaders = sorted(lang for lang, v in votes.items() if v == top)
        if len(leaders) > 1:
            if hint not in leaders:
                return None
            leaders = [hint]
        share = top / max(n_tokens, 1)
        return leaders[0], round(min(0.9, 0.5 + 0.4 * share), 3)

    @staticmethod
    def _langdetect(text: str) -> dict[str, float]:
        detector = _factory().create()
        detector.n_trial = LANGDETECT_TRIALS
        detector.append(text[:MAX_DETECT_CHARS])
        try:
            ranked = detector.get_probabilities()
        except LangDetectException:  # no usable features (digits, symbols only)
            return {}
        probs: dict[str, float] = {}
        for item in ranked:
            code = normalise_code(item.lang)
            probs[code] = probs.get(code, 0.0) + float(item.prob)
        return probs
