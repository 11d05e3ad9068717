"""Urgency of a customer message: low | normal | high | critical, a 0-1 score and human-readable reasons.

Levels (the contract agents and the evaluation set share):

* critical: security or money at risk now (hacked account, fraud, stolen card, unauthorised charge), safety
(fire,
  injury), legal threat (lawyer, police, consumer authority);
* high: the customer is blocked now or has a deadline (payment failing, cannot log in, order overdue, needed
today),
  explicit urgency, escalation threats, strong anger about a real problem, repeated contact;
* normal: ordinary requests (track, change, return, refund status);
* low: no time pressure (questions, feedback, thanks, newsletter).

Signals: the intent's default urgency from the taxonomy, weighted by the classifier's probabilities;
multilingual cue patterns (`lexicons/urgency.json`: en, es, de, fr, pt, ar, id, hi, tr, it, ru, nl, pl, ja,
zh, vi, ko); repeated contact in the thread; sentiment intensity. Critical/high cues only ever raise the
level. Two things lower it: an explicit "no rush" (one level, never from critical), and a low-stakes topic
(thanks, availability, newsletter...) when the intent classifier is unsure and the message names no real
problem (no order, payment, account... words).
Strong anger raises a normal request to high only when there is a real problem behind it.

Matching: the message is lower-cased and folded the same way for every language (Latin accents and Arabic
diacritics/hamza seats dropped, `đ ı ł` → `d i l`; Cyrillic, Devanagari, kana and Hangul kept intact), and
patterns are written in that folded form. Patterns of languages written without spaces between words, or
with particles glued to them (ja, zh, ko), match anywhere; the others only as whole words.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from service.triage.models import HistoryMessage, Intent, IntentAlternative, Sentiment, Urgency, UrgencyLevel

if TYPE_CHECKING:
    from service.triage.taxonomy import Taxonomy

LEXICON_PATH = Path(__file__).resolve().parent / "lexicons" / "urgency.json"

ORDER = [UrgencyLevel.low, UrgencyLevel.normal, UrgencyLevel.high, UrgencyLevel.critical]
RANK = {lvl: i for i, lvl in enumerate(ORDER)}
# Score of each level and the score band it owns: low [0, .25), normal [.25, .5), high [.5, .8), critical [.8,
# 1].
LEVEL_SCORE = {
    UrgencyLevel.low: 0.1,
    UrgencyLevel.normal: 0.35,
    UrgencyLevel.high: 0.65,
    UrgencyLevel.critical: 0.9,
}
BAND = {
    UrgencyLevel.low: (0.0, 0.24),
    UrgencyLevel.normal: (0.25, 0.49),
    UrgencyLevel.high: (0.5, 0.79),
    UrgencyLevel.critical: (0.8, 1.0),
}
ANGER_AT = -0.6  # sentiment score at or below which anger escalates a normal request to high
CONFIDENT_INTENT = 0.5  # below this intent confidence, cue words may override the intent's default urgency
UNANSWERED_AT = 2  # this many customer messages in a row before this one, with no reply, is repeated contact


# Letters without a decomposition that customers commonly type without their mark (Vietnamese đ, Turkish ı,
# Polish ł), and the Arabic tatweel (a stretching stroke, not a letter).
_FOLD = str.maketrans({"đ": "d", "ı": "i", "ł": "l", "\u0640": ""})
# Languages whose cue patterns match without word boundaries: no spaces between words (ja, zh) or particles
# and endings glued to the word (ko: 해킹을, 해킹당했어요).
UNSPACED_LANGUAGES = frozenset({"ja", "zh", "ko"})
# Negators written right before the word in languages without spaces (不紧急, 没有着火, 無理).
_CJK_NEGATORS = frozenset("不没沒无無非别別")


def _strips_marks(base: str) -> bool:
    """Marks on Latin letters (accents, Vietnamese tones) and Arabic ones (harakat, hamza seats) are dropped;
    on other scripts they are part of the letter (й, Devanagari virama, kana voicing marks)."""
    return base.isascii() or "\u0600" <= base <= "\u06ff"


def normalise(text: str) -> str:
    """Lower-case, accents stripped, apostrophes dropped (`can't` → `cant`, `n'arrive` → `narrive`); letters
    of other scripts kept whole (`й`, `が`, Hangul syllables)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    kept: list[str] = []
    strip = False
    for ch in decomposed:
        if unicodedata.combining(ch):
            if strip:
                continue
        else:
            strip = _strips_marks(ch)
        kept.append(ch)
    plain = unicodedata.normalize("NFC", "".join(kept)).translate(_FOLD)
    plain = re.sub(r"['’`´]", "", plain)
    return re.sub(r"\s+", " ", plain)


def level_of(score: float) -> UrgencyLevel:
    for lvl in reversed(ORDER):
        if score >= BAND[lvl][0]:
            return lvl
    return UrgencyLevel.low


def _compile(patterns: Mapping[str, Sequence[str]]) -> re.Pattern[str]:
    """Whole-word alternatives for spaced languages, anywhere-alternatives for `UNSPACED_LANGUAGES`."""
    bounded = [p for lang in sorted(patterns) if lang not in UNSPACED_LANGUAGES for p in patterns[lang]]
    free = [p for lang in sorted(patterns) if lang in UNSPACED_LANGUAGES for p in patterns[lang]]
    parts = []
    if bounded:
        parts.append(r"(?<!\w)(?:" + "|".join(f"(?:{p})" for p in bounded) + r")(?!\w)")
    if free:
        parts.append("|".join(f"(?:{p})" for p in free))
    return re.compile("|".join(parts) if parts else r"(?!)")


NEGATORS = frozenset(
    {
        "not",
        "no",
        "nicht",
        "kein",
        "keine",
        "pas",
        "nao",
        "non",
        "niet",
        "geen",
        "isnt",
        "never",
        "nothing",
        "nada",
        "nichts",
        "rien",
        "without",
        "sin",
        "sem",
        "ohne",
        "sans",
        "dont",
        # ru, pl
        "не",
        "нет",
        "без",
        "nie",
        "bez",
        # id
        "tidak",
        "tak",
        "bukan",
        "gak",
        "nggak",
        "enggak",
        "ga",
        # hi
        "नहीं",
        "न",
        "मत",
        "बिना",
        # ar (folded: no hamza seats)
        "لا",
        "ليس",
        "ليست",
        "غير",
        "مش",
        "مو",
        "بدون",
        "بلا",
        # vi (folded: không, chẳng, chưa, đừng)
        "khong",
        "chang",
        "chua",
        "dung",
        # ko
        "안",
        "못",
    }
)


def _negated(normalised: str, start: int) -> bool:
    """A negator among the two words before `start` (`not urgent`, `no es urgente`, `не срочно`, `không khẩn
    cấp`) or, in scripts without spaces, among the two characters before it (`不紧急`)."""
    before = re.findall(r"\w+", normalised[:start])[-2:]
    if any(w in NEGATORS for w in before):
        return True
    return any(ch in _CJK_NEGATORS for ch in normalised[max(0, start - 2) : start])


@dataclass(frozen=True)
class Cue:
    """One family of cue patterns; with several groups (`all_of`) every group must match.

    kind: `raise` (critical/high evidence), `lower` (explicit no-rush), `topic` (low-stakes topic), `guard` (a
    real service request)."""

    name: str
    level: UrgencyLevel
    reason: str
    groups: tuple[re.Pattern[str], ...]
    kind: str = "raise"
    negatable: bool = False

    @classmethod
    def from_json(cls, spec: dict) -> Cue:
        groups = spec.get("all_of") or [spec["patterns"]]
        return cls(
            spec["name"],
            UrgencyLevel(spec["level"]),
            spec["reason"],
            tuple(_compile(g) for g in groups),
            kind=spec.get("kind", "raise"),
            negatable=bool(spec.get("negatable", False)),
        )

    def match(self, normalised: str) -> str | None:
        """The text that triggered the cue (first group's match), or None."""
        first: re.Match[str] | None = None
        for m in self.groups[0].finditer(normalised):
            if not (self.negatable and _negated(normalised, m.start())):
                first = m
                break
        if first is None:
            return None
        rest = [g.search(normalised) for g in self.groups[1:]]
        if not all(rest):
            return None
        return "' + '".join(m.group(0).strip() for m in (first, *rest) if m is not None)


@cache
def load_cues(path: Path = LEXICON_PATH) -> tuple[Cue, ...]:
    spec = json.loads(path.read_text(encoding="utf-8"))
    return tuple(Cue.from_json(c) for c in spec["cues"])


class UrgencyScorer:
    """Stateless after construction; `assess` is thread-safe."""

    def __init__(
        self, priors: Mapping[str, UrgencyLevel] | None = None, cues: Sequence[Cue] | None = None
    ) -> None:
        self.priors = dict(priors or {})
        self.cues = tuple(cues) if cues is not None else load_cues()

    @classmethod
    def from_taxonomy(cls, taxonomy: Taxonomy | None) -> UrgencyScorer:
        """Each intent's default urgency; a classifier trained on plain labelled data has none."""
        intents = taxonomy.intents if taxonomy is not None else {}
        return cls({name: spec.default_urgency for name, spec in intents.items()})

    def assess(
        self,
        text: str,
        *,
        intent: Intent | None = None,
        sentiment: Sentiment | None = None,
        history: Sequence[HistoryMessage] = (),
    ) -> Urgency:
        prior_score, prior_reason = self._prior(intent)
        prior_level = level_of(prior_score)
        confident = (
            intent is not None
            and not intent.out_of_scope
            and intent.confidence >= CONFIDENT_INTENT
            and intent.name in self.priors
        )

        norm = normalise(text)
        found: dict[str, list[tuple[UrgencyLevel, str]]] = {
            "raise": [],
            "lower": [],
            "topic": [],
            "guard": [],
        }
        for cue in self.cues:
            snippet = cue.match(norm)
            if snippet is not None:
                found.setdefault(cue.kind, []).append((cue.level, f"{cue.reason}: '{snippet}'"))
        if not any(ch.isalpha() for ch in text):
            found["topic"].append((UrgencyLevel.low, "no words (emoji or symbols only)"))
        unanswered = _unanswered(history)
        if unanswered >= UNANSWERED_AT:
            found["raise"].append(
                (
                    UrgencyLevel.high,
                    f"repeated contact: {unanswered + 1} customer messages in a row without a reply",
                )
            )

        level = prior_level
        reasons: list[str] = []
        raised = sorted(found["raise"], key=lambda s: -RANK[s[0]])
        for lvl, reason in raised:
            level = lvl if RANK[lvl] > RANK[level] else level
            reasons.append(reason)
        # Anger makes a real problem high; anger about trivia (the newsletter, the website's colours) stays
        # low.
        angry = sentiment is not None and sentiment.score <= ANGER_AT
        if (
            angry
            and sentiment is not None
            and level is not UrgencyLevel.low
            and (found["guard"] or confident)
        ):
            if level is UrgencyLevel.normal:
                level = UrgencyLevel.high
            reasons.append(f"strong negative sentiment ({sentiment.score:+.2f})")
        # A low-stakes topic decides when the classifier is unsure and nothing points to a real problem.
        if (
            found["topic"]
            and not raised
            and not found["guard"]
            and level is UrgencyLevel.normal
            and not confident
        ):
            level = UrgencyLevel.low
            reasons.append(found["topic"][0][1])
        if found["lower"] and level is not UrgencyLevel.critical:
            level = ORDER[max(0, RANK[level] - 1)]
            reasons.append(found["lower"][0][1])
        if prior_reason:
            reasons.append(prior_reason)

        supporting = sum(1 for lvl, _ in raised if lvl is level) + (1 if prior_level is level else 0)
        base = prior_score if prior_level is level else LEVEL_SCORE[level]
        score = base + 0.04 * max(0, supporting - 1) + (0.03 if angry else 0.0)
        lo, hi = BAND[level]
        return Urgency(level=level, score=round(min(hi, max(lo, score)), 3), reasons=reasons)

    def _prior(self, intent: Intent | None) -> tuple[float, str | None]:
        """Expected urgency score under the classifier's probabilities (unknown mass counts as normal)."""
        if intent is None:
            return LEVEL_SCORE[UrgencyLevel.normal], None
        candidates = intent.alternatives or (
            [] if intent.out_of_scope else [IntentAlternative(name=intent.name, confidence=intent.confidence)]
        )
        mass, score = 0.0, 0.0
        for alt in candidates:
            lvl = self.priors.get(alt.name)
            if lvl is None:
                continue
            mass += alt.confidence
            score += alt.confidence * LEVEL_SCORE[lvl]
        mass = min(mass, 1.0)
        score += (1.0 - mass) * LEVEL_SCORE[UrgencyLevel.normal]
        if intent.out_of_scope:
            near = ", ".join(f"{a.name} {a.confidence:.2f}" for a in candidates[:2])
            return (
                score,
                f"out of scope (nearest intents weighed by probability: {near})" if near else "out of scope",
            )
        lvl = self.priors.get(intent.name)
        if lvl is None:
            return score, None
        return score, f"intent {intent.name}: {lvl.value} by default (confidence {intent.confidence:.2f})"


def _unanswered(history: Sequence[HistoryMessage]) -> int:
    """Customer messages at the end of the thread with no agent/bot reply after them."""
    n = 0
    for msg in reversed(history):
        if msg.role.strip().lower() != "customer":
            break
        n += 1
    return n
