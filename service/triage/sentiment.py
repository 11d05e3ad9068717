"""Sentiment of a customer message from its words AND its emoji.

* English words: VADER (lexicon and rules: negation, intensifiers, caps, `!!`), with a few support-domain
overrides
  (`help`, `please`, `urgent`, `cancel` carry no sentiment in a support chat).
* es / de / fr / pt (+ it / nl): small cue lexicons in `lexicons/sentiment.json`, negation-aware: `no
funciona`,
  `nicht angekommen`, `ne marche pas`, `não chegou` are negative although none of their words is.
* Emoji: the Emoji Sentiment Ranking (Kralj Novak et al. 2015) shipped by the `emoji-sentiment` package, with
  overrides where tweets and support chats disagree (😡 is angry in a support chat; 🚨 is not happy) and for
  emoji newer than the ranking (🤬 🙄 🥰).

The score is in -1..1; the label is `neutral` inside a small band around 0.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import emoji as emoji_lib
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer, normalize

from service.triage.language import strip_accents
from service.triage.models import Sentiment, SentimentLabel

LEXICON_PATH = Path(__file__).resolve().parent / "lexicons" / "sentiment.json"

POSITIVE_AT = 0.2  # score >= this → positive
NEGATIVE_AT = -0.15  # score <= this → negative (complaints are often mild in words)
NEGATION_SCALAR = -0.74  # VADER's N_SCALAR: a negated word keeps part of its strength, flipped
EXPECTATION_NEGATED = -2.0  # `didn't arrive`, `no funciona`
INTENSIFIER_BOOST = 1.3
NEGATION_WINDOW_BEFORE = 3
NEGATION_WINDOW_AFTER = 2
TEXT_WEIGHT = 0.65  # when both words and emoji carry sentiment
_SKIN_TONES = {chr(c) for c in range(0x1F3FB, 0x1F400)}
_TOKEN = re.compile(r"[^\W\d_]+")
_CLAUSE = re.compile(r"[,.;:!?¿¡()\n]+|\s[-–—]\s")


def _norm(word: str) -> str:
    return strip_accents(word).lower()


def tokens(text: str) -> list[str]:
    """Lower-case, accent-free word tokens; apostrophes split (`n'est` → `n`, `est`; `don't` → `don`, `t`)."""
    return _TOKEN.findall(_norm(text))


def clauses(text: str) -> list[list[str]]:
    """Token lists per clause: negation never reaches across `,` `.` `!` `?` `;` `:` or a line break."""
    return [toks for part in _CLAUSE.split(text) if (toks := tokens(part))]


@dataclass(frozen=True)
class CueLexicon:
    negators: frozenset[str]
    negate_after: bool
    expectations: dict[str, float]
    words: dict[str, float]
    intensifiers: frozenset[str]

    @classmethod
    def from_json(cls, spec: dict, intensifiers: list[str]) -> CueLexicon:
        return cls(
            negators=frozenset(_norm(w) for w in spec.get("negators", [])),
            negate_after=bool(spec.get("negate_after", False)),
            expectations={_norm(k): float(v) for k, v in spec.get("expectations", {}).items()},
            words={_norm(k): float(v) for k, v in spec.get("words", {}).items()},
            intensifiers=frozenset(_norm(w) for w in intensifiers),
        )

    def score(self, parts: list[list[str]], skip: frozenset[str] = frozenset()) -> tuple[float, int]:
        """(sum of valences on VADER's scale, number of cues found) over the clauses of a message.

        `skip`: words another analyser (VADER) already scored."""
        total, hits = 0.0, 0
        for toks in parts:
            t, h = self._score_clause(toks, skip)
            total, hits = total + t, hits + h
        return total, hits

    def _score_clause(self, toks: list[str], skip: frozenset[str]) -> tuple[float, int]:
        total, hits, i, n = 0.0, 0, 0, len(toks)
        while i < n:
            span = 1
            bigram = f"{toks[i]} {toks[i + 1]}" if i + 1 < n else ""
            if bigram and bigram in self.words:
                kind, value, span = "word", self.words[bigram], 2
            elif toks[i] in skip:
                i += 1
                continue
            elif toks[i] in self.expectations:
                kind, value = "expectation", self.expectations[toks[i]]
            elif toks[i] in self.words:
                kind, value = "word", self.words[toks[i]]
            else:
                i += 1
                continue
            before = toks[max(0, i - NEGATION_WINDOW_BEFORE) : i]
            # `funktioniert nicht`, `marche pas`: only verbs of expectation take a negator after them
            after = (
                toks[i + span : i + span + NEGATION_WINDOW_AFTER]
                if self.negate_after and kind == "expectation"
                else []
            )
            negated = any(t in self.negators for t in before) or any(t in self.negators for t in after)
            if kind == "expectation":
                value = EXPECTATION_NEGATED if negated else value
            elif negated:
                value *= NEGATION_SCALAR
            if i > 0 and toks[i - 1] in self.intensifiers:
                value *= INTENSIFIER_BOOST
            if value:
                total += value
                hits += 1
            i += span
        return total, hits


@cache
def _lexicon_file() -> dict:
    return json.loads(LEXICON_PATH.read_text(encoding="utf-8"))


@cache
def emoji_sentiment_ranking() -> tuple[tuple[str, float, int], ...]:
    """Emoji Sentiment Ranking v1.0 (Kralj Novak et al. 2015) from the `emoji-sentiment` package as
    (emoji, score, samples); read once per process and shared with the tone checker.

    Reads the package's own data file with the package's formula (score = positive/n - negative/n, rounded to
    3 places, as `EmojiSentiment()` does): its constructor also looks up every row's short names by a linear
    search of the emoji catalogue, ~0.9 s of each start that we never use. A test keeps the two equal."""
    from emoji_sentiment import EmojiSentiment

    rows = []
    with open(EmojiSentiment.CSV_FILE_PATH, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            negative, neutral, positive = int(row["Negative"]), int(row["Neutral"]), int(row["Positive"])
            samples = negative + neutral + positive
            rows.append((row["Emoji"], round(positive / samples - negative / samples, 3), samples))
    return tuple(rows)


@cache
def emoji_scores() -> dict[str, float]:
    """emoji (without variation selector) → sentiment in -1..1: the Emoji Sentiment Ranking plus our
    overrides."""
    spec = _lexicon_file()
    min_samples = int(spec.get("emoji_min_samples", 30))
    scores = {
        char.replace("\ufe0f", ""): score
        for char, score, samples in emoji_sentiment_ranking()
        if samples >= min_samples
    }
    scores.update({k.replace("\ufe0f", ""): float(v) for k, v in spec.get("emoji_overrides", {}).items()})
    return scores


def _base_emoji(chars: str) -> str:
    return "".join(ch for ch in chars if ch != "\ufe0f" and ch not in _SKIN_TONES)


def _from_sum(total: float) -> float:
    return normalize(total) if total else 0.0


def _to_sum(compound: float) -> float:
    """Invert VADER's normalisation (x / sqrt(x² + 15)) so word cues can be added to its raw sum."""
    c = max(-0.9999, min(0.9999, compound))
    return c * math.sqrt(15) / math.sqrt(1 - c * c)


class SentimentAnalyzer:
    """Build once (loads VADER and the emoji ranking, about half a second); `analyze` is thread-safe."""

    def __init__(self) -> None:
        spec = _lexicon_file()
        self._vader = SentimentIntensityAnalyzer()
        for word, value in spec.get("vader_overrides", {}).items():
            if value:
                self._vader.lexicon[word] = float(value)
            else:  # removed, not zeroed: VADER turns a zero-valence word in CAPS into a negative one
                self._vader.lexicon.pop(word, None)
        intens = spec.get("intensifiers", {})
        self._cues = {
            lang: CueLexicon.from_json(s, intens.get(lang, [])) for lang, s in spec["languages"].items()
        }
        self._vader_known = frozenset(w for w, v in self._vader.lexicon.items() if v)
        self._emoji = emoji_scores()

    @property
    def languages(self) -> list[str]:
        return sorted(self._cues)

    def analyze(self, text: str, language: str = "en") -> Sentiment:
        score = self.score(text, language)
        if score >= POSITIVE_AT:
            label = SentimentLabel.positive
        elif score <= NEGATIVE_AT:
            label = SentimentLabel.negative
        else:
            label = SentimentLabel.neutral
        return Sentiment(label=label, score=round(score, 3))

    def score(self, text: str, language: str = "en") -> float:
        found = emoji_lib.emoji_list(text)
        words_only = emoji_lib.replace_emoji(text, replace=" ") if found else text
        text_score, text_signal = self._text_score(words_only, language)
        emoji_score, emoji_signal = self._emoji_score([e["emoji"] for e in found])
        if text_signal and emoji_signal:
            return TEXT_WEIGHT * text_score + (1 - TEXT_WEIGHT) * emoji_score
        if emoji_signal:
            return emoji_score
        return text_score

    def _text_score(self, text: str, language: str) -> tuple[float, bool]:
        """Score with the detected language's cues; when they find nothing (short messages are often
        mis-detected: `pésimo servicio`), the lexicon that recognises the most cues decides."""
        parts = clauses(text)
        if not parts:
            return 0.0, False
        first = self._score_with(language if language in self._cues else "en", text, parts)
        if first[2]:
            return first[0], True
        # VADER reads any Latin text as English (German `die` is -2.9 there), so it is only a fallback for
        # messages whose detected language has no cue lexicon of its own.
        others = [
            self._score_with(lang, text, parts)
            for lang in self._cues
            if lang != language and (lang != "en" or language not in self._cues)
        ]
        best = max(others, key=lambda r: (r[2], abs(r[0])))
        return (best[0], True) if best[2] else (first[0], False)

    def _score_with(self, language: str, text: str, parts: list[list[str]]) -> tuple[float, bool, int]:
        """(score, has signal, strength of evidence) of `text` read as `language`."""
        if language != "en":
            total, hits = self._cues[language].score(parts)
            total *= self._emphasis(text)
            return max(-1.0, min(1.0, _from_sum(total))), hits > 0, hits
        compound = self._vader.polarity_scores(text)["compound"]
        total, hits = self._cues["en"].score(parts, skip=self._vader_known)
        if hits:
            compound = _from_sum(_to_sum(compound) + total)
        vader_hits = sum(1 for toks in parts for t in toks if t in self._vader_known)
        return compound, bool(hits or compound), hits + (vader_hits if compound else 0)

    @staticmethod
    def _emphasis(text: str) -> float:
        """`!!!` and SHOUTING strengthen whatever sentiment the words carry (VADER does this for English)."""
        boost = 1 + 0.08 * min(text.count("!"), 4)
        letters = [ch for ch in text if ch.isalpha()]
        if len(letters) >= 8 and sum(ch.isupper() for ch in letters) / len(letters) > 0.7:
            boost += 0.25
        return boost

    def _emoji_score(self, found: list[str]) -> tuple[float, bool]:
        values = [self._emoji[b] for e in found if (b := _base_emoji(e)) in self._emoji]
        if not values:
            return 0.0, False
        mean = sum(values) / len(values)
        mean *= 1 + 0.1 * (len(values) - 1)
        return max(-1.0, min(1.0, mean)), bool(mean)
