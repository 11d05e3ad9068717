"""Validation of one draft before it ships, with repairs where a repair is safe.

Order: Markdown clean-up → citations (only ids of the given articles) → links (the link policy of
`service.kb.links`: nothing off the help host and the allow-list, however disguised; then only a given
article's URL, at most one) → paragraphs (≤ 3) → length (≤ 600, cut at a sentence) → leftover placeholders →
claims (`claims.py`: a sentence whose contact, identifier, amount or "it is done" claim has no source of its
own is dropped) → policy (no refund / credit / discount promise that no cited article sentence makes the same
way) → language (the target's, by langdetect) → tone (no `block` finding; the tone checker's `suggested_text`
is tried once). A draft that cannot be repaired is dropped with a reason. Template drafts get the links, the
claims and the tone check. What the link and claim checks remove is listed in `safety_findings`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import langdetect
from langdetect import DetectorFactory
from langdetect.lang_detect_exception import LangDetectException
from pydantic import BaseModel, ConfigDict, ValidationError

from service import yamlfile
from service.drafting.claims import ClaimChecker, ClaimSources, amounts, sentences
from service.drafting.models import MAX_DRAFT_CHARS, MAX_PARAGRAPHS, GroundingArticle, SafetyFinding
from service.drafting.templates import trim_to
from service.errors import InvalidInput
from service.kb.links import LinkPolicy, LinkProblem
from service.settings import Settings
from service.tone.checker import ToneChecker
from service.tone.models import Severity, ToneContext, ToneFinding
from service.triage.entities import has_placeholders
from service.triage.language import (
    LanguageDetector,
    _word_lexicon,
    normalise_code,
    strip_accents,
    variety_tags,
)

POLICY_PATH = Path(__file__).resolve().parent / "policy.yaml"
MIN_DRAFT_CHARS = 20

_URL = re.compile(r"(?:https?://|www\.)[^\s<>()\[\]{}\"'`]+", re.IGNORECASE)
# any target: `[click](javascript:alert(1))` is flattened too, and its target then meets the link policy
_MD_LINK = re.compile(r"\[([^\]\n]{1,200})\]\(([^()\s]+(?:\([^()\s]*\)[^()\s]*)?)\)")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s.*$", re.MULTILINE)
_MD_TABLE = re.compile(r"^\s*\|.*\|\s*$|^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*$", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_MD_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+", re.MULTILINE)
_TRAILING_PUNCT = ".,;:!?…"
# Pieces of the prompt or of JSON echoed into a draft: markup, braces, the schema's and the prompt's own
# words.
# Identifiers such as `order_status` or `cited_article_ids` (snake_case) never belong in a reply to a
# customer.
_ARTIFACT = re.compile(r"[{}]|</?[A-Za-z_]\w*[^>]{0,40}>|```|\b[a-z]+(?:_[a-z]+)+\b|\b(?:JSON|untrusted)\b")


@lru_cache(maxsize=1024)
def _id_pattern(article_id: str) -> re.Pattern[str]:
    """An article id written as text (not inside its URL): internal, never shown to customers."""
    return re.compile(rf"(?<![\w/-]){re.escape(article_id)}(?![\w/-])")


# -- language of a draft
# ------------------------------------------------------------------------------------------

# The languages a draft is realistically confused with; the target is added when langdetect has a profile for
# it.
CONFUSABLE_LANGUAGES = ("en", "es", "pt", "fr", "de", "it", "nl", "ca", "ro", "da", "sv", "no", "tl")
LANGDETECT_TRIALS = 3
LANGDETECT_MAX_CHARS = 400
MIN_LETTERS_FOR_CHECK = 25
TARGET_MIN_PROB = 0.2
MIN_WORD_VOTES = 4  # fast path: at least this many frequent words of the target language...
WORD_VOTE_RATIO = 3  # ...and this many times the votes of any other language
_TOKEN = re.compile(r"[^\W\d_]+")
_PROFILES_DIR = Path(langdetect.__file__).resolve().parent / "profiles"
_PROFILE_NAME = {"zh": "zh-cn"}
_NOISE = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+|\[[A-Z]+_\d+\]|[#@]\S+|\b[A-Z]{1,4}-?\d[\w-]*|\d+")
_factory_lock = threading.Lock()


@lru_cache(maxsize=16)
def _factory(languages: tuple[str, ...]) -> DetectorFactory:
    """A langdetect factory with only these profiles: a draft is checked against its likely confusers, which
    is several times faster than against all 55 languages and just as decisive for "is this the target
    language"."""
    with _factory_lock:
        factory = DetectorFactory()
        profiles = [
            (_PROFILES_DIR / _PROFILE_NAME.get(code, code)).read_text(encoding="utf-8") for code in languages
        ]
        factory.load_json_profile(profiles)
        factory.seed = 0
        return factory


@cache
def _variety_detector() -> LanguageDetector:
    return LanguageDetector()


class DraftLanguage:
    """Is a draft written in the target language? langdetect (seed fixed, 3 trials) over the likely
    confusers."""

    def __init__(self, confusable: Sequence[str] = CONFUSABLE_LANGUAGES) -> None:
        self.confusable = tuple(confusable)

    def _languages(self, target: str) -> tuple[str, ...]:
        code = _PROFILE_NAME.get(target, target)
        if target in self.confusable or not (_PROFILES_DIR / code).is_file():
            return self.confusable
        return (*self.confusable, target)

    def probabilities(self, text: str, target: str) -> dict[str, float]:
        """langdetect probabilities, or {} when the text is too short or has no usable letters to decide."""
        clean = _NOISE.sub(" ", text)[:LANGDETECT_MAX_CHARS]
        if sum(ch.isalpha() for ch in clean) < MIN_LETTERS_FOR_CHECK:
            return {}
        detector = _factory(self._languages(target)).create()
        detector.n_trial = LANGDETECT_TRIALS
        detector.append(clean)
        try:
            ranked = detector.get_probabilities()
        except LangDetectException:
            return {}
        return {normalise_code(r.lang): float(r.prob) for r in ranked}

    @staticmethod
    def clearly(text: str, target: str) -> bool:
        """Fast path: the text's frequent words (triage's lexicon) vote clearly for `target` (no
        langdetect)."""
        words = _word_lexicon()
        if target not in words:
            return False
        tokens = {strip_accents(t).lower() for t in _TOKEN.findall(_NOISE.sub(" ", text))}
        votes = {lang: len(tokens & vocab) for lang, vocab in words.items()}
        mine = votes.pop(target)
        return mine >= MIN_WORD_VOTES and mine >= WORD_VOTE_RATIO * max(votes.values(), default=0)

    def mismatch(self, text: str, target: str) -> str | None:
        """The language found instead of `target`, or None when the text is in `target` (or too short to
        tell). Romanised and code-mixed varieties (`hi-Latn`, `ar-Latn`, `tl`) have no langdetect profile of
        their own: triage's detector, which knows them, decides."""
        if target in variety_tags():
            found = _variety_detector().detect_text(text, target)
            return None if found is None or found[0] == target else found[0]
        if self.clearly(text, target):
            return None
        probs = self.probabilities(text, target)
        if not probs:
            return None
        best = max(probs, key=lambda k: probs[k])
        if best == target or probs.get(target, 0.0) >= TARGET_MIN_PROB:
            return None
        return best

    @lru_cache(maxsize=4096)  # noqa: B019 - one instance per process; article summaries repeat
    def cached_mismatch(self, text: str, target: str) -> str | None:
        return self.mismatch(text, target)


# -- policy
# -------------------------------------------------------------------------------------------------------


class PolicyRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    description: str
    patterns: list[str]
    terms: dict[str, str] = {}  # kind of commitment -> regex over accent-free lower-case text


class PolicyBook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    rules: list[PolicyRule]


# a commitment an article sentence negates ("we do not refund", "erstatten wir keine") grounds nothing
_NEGATION = re.compile(
    r"\b(?:not|no|never|cannot|can't|won't|don't|doesn't|isn't|aren't|nicht|kein\w*|nie|niemals|nunca|"
    r"jamas|jamais|pas|ne|n'|nao|nem)\b"
)


@dataclass(frozen=True)
class _Rule:
    id: str
    rx: re.Pattern[str]
    terms: dict[str, re.Pattern[str]]


class Policy:
    """Commitments a draft may only make when a cited article's sentence makes the same one
    (`policy.yaml`)."""

    def __init__(self, book: PolicyBook) -> None:
        self.book = book
        self._rules = [
            _Rule(
                r.id,
                re.compile("|".join(f"(?:{p})" for p in r.patterns), re.IGNORECASE),
                {k: re.compile(v) for k, v in r.terms.items()},
            )
            for r in book.rules
        ]

    @classmethod
    def load(cls, path: Path = POLICY_PATH) -> Policy:
        return cls(_load_policy(Path(path)))

    def violations(self, text: str, grounding: str | Sequence[str]) -> list[str]:
        """Rule ids the text breaks: a sentence makes a commitment that no grounding sentence makes too (same
        rule, same term, not negated, every amount and percentage of the draft's sentence in it)."""
        sources = [grounding] if isinstance(grounding, str) else list(grounding)
        grounds = [g for src in sources for g in sentences(src)]
        broken = []
        for rule in self._rules:
            if not rule.rx.search(text):
                continue
            for sentence in sentences(text):
                commitments = {self._term(rule, m, sentence) for m in rule.rx.finditer(sentence)}
                said = amounts(sentence)
                if any(not self._grounded(rule, term, said, grounds) for term in commitments):
                    broken.append(rule.id)
                    break
        return broken

    @staticmethod
    def _term(rule: _Rule, match: re.Match[str], sentence: str) -> str:
        """The kind of commitment a match makes: the first term in the matched words, else in the sentence."""
        for where in (match.group(0), sentence):
            folded = strip_accents(where.lower())
            for term, rx in rule.terms.items():
                if rx.search(folded):
                    return term
        return ""

    def _grounded(self, rule: _Rule, term: str, said: frozenset, grounds: Sequence[str]) -> bool:
        for g in grounds:
            if not said <= amounts(g):
                continue
            for m in rule.rx.finditer(g):
                if self._term(rule, m, g) == term and not _negated(g, m):
                    return True
        return False


def _negated(sentence: str, m: re.Match[str]) -> bool:
    """A negation among the three words before the match, in it, or in the two words after it."""
    before = " ".join(sentence[: m.start()].split()[-3:])
    after = " ".join(sentence[m.end() :].split()[:2])
    window = strip_accents(f"{before} {m.group(0)} {after}".lower()).replace("’", "'")
    return bool(_NEGATION.search(window))


@cache
def _load_policy(path: Path) -> PolicyBook:
    try:
        book = PolicyBook.model_validate(yamlfile.safe_load(path.read_text(encoding="utf-8")))
        for rule in book.rules:
            for p in rule.patterns:
                re.compile(p)
        return book
    except (OSError, yamlfile.YAMLError, ValidationError, re.error) as exc:
        raise InvalidInput(f"cannot load drafting policy {path}: {exc}") from exc


def normalise_url(url: str) -> str:
    url = url.rstrip(_TRAILING_PUNCT)
    if url.lower().startswith("www."):
        url = "https://" + url
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}".rstrip("/")


@dataclass
class CheckResult:
    text: str | None  # None: dropped
    cited_article_ids: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    tone_findings: list[ToneFinding] = field(default_factory=list)
    dropped_because: str | None = None
    safety_findings: list[SafetyFinding] = field(default_factory=list)


@dataclass(frozen=True)
class CheckContext:
    language: str  # the target language code
    locale: str | None  # for the tone check (register, culture)
    tone: ToneContext
    articles: Sequence[GroundingArticle]
    sources: ClaimSources = field(default_factory=ClaimSources)  # what claims may rest on besides articles


def default_link_policy() -> LinkPolicy:
    """The policy of the default settings (help host and allow-list), for checkers built without one."""
    fields = Settings.model_fields
    return LinkPolicy.from_config(fields["kb_help_base_url"].default, fields["kb_link_allowed_hosts"].default)


class DraftChecker:
    def __init__(
        self,
        tone: ToneChecker,
        policy: Policy,
        language: DraftLanguage | None = None,
        *,
        links: LinkPolicy | None = None,
        claims: ClaimChecker | None = None,
    ) -> None:
        self.language = language or DraftLanguage()
        self.tone = tone
        self.policy = policy
        self.links = links or default_link_policy()
        self.claims = claims or ClaimChecker()

    # -- the structural repairs (cheap, deterministic)
    # --------------------------------------------------------

    def _strip_markdown(self, text: str, repairs: list[str], findings: list[SafetyFinding]) -> str:
        def flatten(m: re.Match[str]) -> str:
            label, target = m.group(1), m.group(2)
            if self.links.deceptive(label, target):
                findings.append(
                    SafetyFinding(
                        rule="deceptive_link",
                        action="removed",
                        text=m.group(0),
                        reason="the link's text shows another address than the one it opens",
                    )
                )
                return label  # the address it shows is checked like any other
            return f"{label}: {target}"

        out = _MD_LINK.sub(flatten, text)
        out = _MD_HEADING.sub("", out)
        out = _MD_TABLE.sub("", out)
        out = _MD_EMPHASIS.sub(r"\2", out)
        out = _MD_BULLET.sub("", out)
        if out != text:
            repairs.append("markdown_removed")
        return out

    def _links(
        self,
        text: str,
        cited: list[str],
        articles: Sequence[GroundingArticle],
        repairs: list[str],
        findings: list[SafetyFinding],
    ) -> tuple[str, list[str]]:
        """The link policy first (no link off the help host and the allow-list, however disguised), then the
        draft rule: only the URL of a given article, at most one."""
        text, removed = self.links.scrub(text)
        for link in removed:
            repairs.append("foreign_url_removed")
            findings.append(
                SafetyFinding(
                    rule="link_not_allowed",
                    action="removed",
                    text=link.text,
                    reason=self.links.reason(link.problem or LinkProblem.foreign_host),
                )
            )
        return self._urls(text, cited, articles, repairs)

    @staticmethod
    def _urls(
        text: str, cited: list[str], articles: Sequence[GroundingArticle], repairs: list[str]
    ) -> tuple[str, list[str]]:
        by_url = {normalise_url(a.url): a.article_id for a in articles if a.url}
        kept_one = False
        cited = list(cited)

        def keep_or_drop(m: re.Match[str]) -> str:
            nonlocal kept_one
            raw = m.group(0)
            url = raw.rstrip(_TRAILING_PUNCT)
            tail = raw[len(url) :]
            article_id = by_url.get(normalise_url(url))
            if article_id is None:
                repairs.append("foreign_url_removed")
                return tail
            if kept_one:
                repairs.append("extra_url_removed")
                return tail
            kept_one = True
            if article_id not in cited:
                cited.append(article_id)
                repairs.append("citation_added")
            return url + tail

        text = _URL.sub(keep_or_drop, text)
        # a link phrase left without its link ("More here: ." / "aquí:") reads broken: drop a dangling colon
        text = re.sub(r"[ \t]*:[ \t]*(?=[.!]?\s*$)", "", text, flags=re.MULTILINE)
        text = re.sub(r"[ \t]*:[ \t]*\.", ".", text)
        return text, cited

    @staticmethod
    def _layout(text: str, repairs: list[str]) -> str:
        lines = [re.sub(r"[ \t]+", " ", ln).strip() for ln in text.replace("\r\n", "\n").split("\n")]
        paragraphs: list[str] = []
        current: list[str] = []
        for ln in lines:
            if ln:
                current.append(ln)
            elif current:
                paragraphs.append(" ".join(current))
                current = []
        if current:
            paragraphs.append(" ".join(current))
        if len(paragraphs) > MAX_PARAGRAPHS:
            paragraphs = [*paragraphs[: MAX_PARAGRAPHS - 1], " ".join(paragraphs[MAX_PARAGRAPHS - 1 :])]
            repairs.append("paragraphs_merged")
        out = "\n\n".join(paragraphs)
        if len(out) > MAX_DRAFT_CHARS:
            out = _trim_paragraphs(paragraphs, MAX_DRAFT_CHARS)
            repairs.append("trimmed")
        return out

    # -- the whole check -------------------------------------------------------------------------------------

    def check_llm_draft(self, text: str, cited_ids: Sequence[str], ctx: CheckContext) -> CheckResult:
        repairs: list[str] = []
        findings: list[SafetyFinding] = []
        known = {a.article_id for a in ctx.articles}
        cited = [i for i in dict.fromkeys(cited_ids) if i in known]
        if len(cited) < len(set(cited_ids)):
            repairs.append("unknown_citation_removed")
        text = self._strip_markdown(text, repairs, findings)
        text, cited = self._links(text, cited, ctx.articles, repairs, findings)
        text = self._layout(text, repairs)
        if len(text) < MIN_DRAFT_CHARS:
            return CheckResult(None, repairs=repairs, dropped_because="too_short", safety_findings=findings)
        if _ARTIFACT.search(_URL.sub(" ", text)):
            return CheckResult(None, repairs=repairs, dropped_because="prompt_artifact")
        if any(_id_pattern(a.article_id).search(text) for a in ctx.articles if "-" in a.article_id):
            return CheckResult(None, repairs=repairs, dropped_because="internal_id")
        if has_placeholders(text):
            return CheckResult(None, repairs=repairs, dropped_because="unknown_placeholder")
        text, cited, dropped = self._claims(text, cited, ctx, repairs, findings)
        if dropped:
            return CheckResult(None, repairs=repairs, dropped_because=dropped, safety_findings=findings)
        grounding = [f"{a.summary}\n{a.snippet}" for a in ctx.articles if a.article_id in cited]
        broken = self.policy.violations(text, grounding)
        if broken:
            return CheckResult(None, repairs=repairs, dropped_because=f"policy:{broken[0]}")
        other = self.language.mismatch(text, ctx.language)
        if other is not None:
            return CheckResult(None, repairs=repairs, dropped_because=f"language:{other}")
        return self._tone(text, cited, repairs, ctx, findings)

    def check_template_draft(self, text: str, cited_ids: Sequence[str], ctx: CheckContext) -> CheckResult:
        """Template drafts are ours, but they paste an article's summary and URL: the same link check as LLM
        drafts, the claim checks, then the tone check (its findings are reported)."""
        repairs: list[str] = []
        findings: list[SafetyFinding] = []
        text, cited = self._links(text, list(cited_ids), ctx.articles, repairs, findings)
        text, cited, dropped = self._claims(text, cited, ctx, repairs, findings)
        if dropped:
            return CheckResult(None, repairs=repairs, dropped_because=dropped, safety_findings=findings)
        return self._tone(text, cited, repairs, ctx, findings)

    def _claims(
        self,
        text: str,
        cited: list[str],
        ctx: CheckContext,
        repairs: list[str],
        findings: list[SafetyFinding],
    ) -> tuple[str, list[str], str | None]:
        """Drop sentences whose contacts, identifiers, amounts or "done" claims have no source; the reason
        when too little is left to send."""
        outcome = self.claims.check(text, cited, ctx.articles, ctx.sources)
        repairs.extend(outcome.repairs)
        findings.extend(outcome.findings)
        if not outcome.findings:
            return outcome.text, outcome.cited, None
        if len(outcome.text) < MIN_DRAFT_CHARS:
            return outcome.text, outcome.cited, "claims:" + outcome.findings[0].rule
        return outcome.text, outcome.cited, None

    def _tone(
        self,
        text: str,
        cited: list[str],
        repairs: list[str],
        ctx: CheckContext,
        findings: list[SafetyFinding] | None = None,
    ) -> CheckResult:
        safety = list(findings or [])
        result = self.tone.check(text, ctx.locale, ctx.tone)
        if not result.ok:
            fixed = result.suggested_text.strip()
            if not fixed or fixed == text:
                return CheckResult(
                    None,
                    repairs=repairs,
                    tone_findings=result.findings,
                    dropped_because="tone:" + _first_block(result.findings),
                    safety_findings=safety,
                )
            second = self.tone.check(fixed, ctx.locale, ctx.tone)
            if not second.ok:
                return CheckResult(
                    None,
                    repairs=repairs,
                    tone_findings=second.findings,
                    dropped_because="tone:" + _first_block(second.findings),
                    safety_findings=safety,
                )
            return CheckResult(
                fixed, cited, [*repairs, "tone_suggestion_applied"], second.findings, safety_findings=safety
            )
        return CheckResult(text, cited, repairs, result.findings, safety_findings=safety)


def _first_block(findings: Sequence[ToneFinding]) -> str:
    return next((f.rule for f in findings if f.severity is Severity.block), "block")


def _trim_paragraphs(paragraphs: list[str], limit: int) -> str:
    """Keep whole paragraphs while they fit; cut the first one that does not at a sentence end."""
    out: list[str] = []
    used = 0
    for p in paragraphs:
        sep = 2 if out else 0
        if used + sep + len(p) <= limit:
            out.append(p)
            used += sep + len(p)
            continue
        rest = limit - used - sep
        if rest >= MIN_DRAFT_CHARS:
            cut = trim_to(p, rest)
            if cut:
                out.append(cut)
        break
    return "\n\n".join(out)
