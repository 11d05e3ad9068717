"""Offline drafts: deterministic replies from the triage result, the required slots and the top article's
steps or summary.

When the top article answers the question (`DraftPlan.answers`: a self-service intent and an article tagged
for it), the drafts give the article's numbered steps (or its summary) and link, and ask for the missing
details in the same draft. An article in another language than the draft is linked only, marked with its
language (`article_language` in the templates: "(in English)" written in the customer's language; `(EN)`
when the file has no entry for that language).

One YAML file per language in `templates/` (20 bundled: en, es, de, fr, pt, ar, id, hi, tr, it, ru, nl, pl,
ja, zh, vi, ko, and the romanised/code-mixed varieties hi-Latn (Hinglish), ar-Latn (Arabizi) and tl (Tagalog,
Taglish register); every file there is loaded, so adding a language is adding its file); the draft language is
the customer's detected language, a BCP 47 tag (`zh-TW`, `pt_BR` → `zh`, `pt`; `hi-Latn-IN` → `hi-Latn`;
`fil-PH` → `tl`). A tag in Latin script never falls back to its language's file in another script (`sr-Latn`
does not get Cyrillic, a Hinglish reader does not get Devanagari): a language without a file gets the default
locale's templates. Every string is a Jinja2 template compiled once at start-up, so a fallback draft
costs well under a millisecond.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, StrictUndefined, Template
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service import yamlfile
from service.drafting.models import MAX_DRAFT_CHARS, MAX_DRAFTS, GroundingArticle
from service.errors import InvalidInput
from service.triage.language import canonical_tag

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STANDALONE_INTENTS = ("greeting", "thanks", "feedback")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


class LanguageTemplates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: str
    version: str
    name: str
    register_rule: str
    hello: str
    hello_negative: str
    and_: str = Field(alias="and")
    ask_missing: str
    ask_missing_short: str
    more_info: str
    no_article: str
    handoff: str
    handoff_urgent: str
    handoff_ask: str
    closing: str
    closing_short: str
    standalone: dict[str, str]
    ack: dict[str, str]
    article_language: dict[str, str] = Field(
        default_factory=dict,
        description="Marker after a link to an article in another language, per article language code, e.g. "
        "`en: (en inglés)` in es.yaml.",
    )

    @property
    def ref(self) -> str:
        return f"templates.{self.language}.{self.version}"


@dataclass(frozen=True)
class TemplateDraft:
    text: str
    cited_article_ids: list[str]


@dataclass(frozen=True)
class DraftPlan:
    """Everything a template draft depends on (decided by the drafter, not here)."""

    intent: str
    negative: bool
    urgent: bool
    needs_human: bool
    asks: list[str]  # phrases for missing, askable slots (already in the draft language)
    article: GroundingArticle | None
    article_in_language: bool  # False: the article's summary is in another language, link only
    answers: bool = False  # the article answers the question: give its steps/summary and link, and ask too
    steps: tuple[str, ...] = ()  # the article's numbered steps (in the article's language)
    article_language: str = ""  # the article's language code (for the link's marker)


def trim_to(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a sentence end when one exists, else at a word with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    out = ""
    for sentence in _SENTENCE_END.split(text):
        candidate = f"{out} {sentence}".strip()
        if len(candidate) > limit:
            break
        out = candidate
    if out:
        return out
    cut = text[: max(0, limit - 1)].rsplit(" ", 1)[0].rstrip(",;:")
    return f"{cut}…" if cut else ""


def numbered(steps: tuple[str, ...] | list[str], limit: int) -> str:
    """ "1. ...\n2. ..." with as many leading steps as fit in `limit` characters ("" when none fits)."""
    lines: list[str] = []
    used = 0
    for i, step in enumerate(steps, start=1):
        line = f"{i}. {' '.join(step.split())}"
        if used + len(line) + (1 if lines else 0) > limit:
            break
        lines.append(line)
        used += len(line) + (1 if len(lines) > 1 else 0)
    return "\n".join(lines)


class TemplateSet:
    """The compiled templates of one language."""

    def __init__(self, data: LanguageTemplates, env: Environment) -> None:
        self.data = data
        self._compiled: dict[str, Template] = {}
        for key in ("ask_missing", "ask_missing_short", "more_info", "handoff_ask"):
            self._compiled[key] = env.from_string(getattr(data, key))

    @property
    def language(self) -> str:
        return self.data.language

    @property
    def latin(self) -> bool:
        """Written in Latin script (most letters of the greeting are Latin)."""
        letters = [ch for ch in self.data.hello if ch.isalpha()]
        return sum(unicodedata.name(ch, "").startswith("LATIN") for ch in letters) * 2 > len(letters)

    @property
    def ref(self) -> str:
        return self.data.ref

    def join(self, items: list[str]) -> str:
        if len(items) <= 1:
            return "".join(items)
        return f"{', '.join(items[:-1])} {self.data.and_} {items[-1]}"

    def render(self, key: str, **kw: str) -> str:
        return self._compiled[key].render(**kw)

    def language_marker(self, article_language: str) -> str:
        """How a link to an article in `article_language` is marked in this language ("(in English)")."""
        code = article_language.lower()
        return self.data.article_language.get(code) or f"({code.upper()})"

    def link(self, plan: DraftPlan) -> str:
        """ "Details here: <url>", marked with the article's language when it differs from the draft's."""
        art = plan.article
        if art is None or not art.url:
            return ""
        link = self.render("more_info", url=art.url)
        if not plan.article_in_language and plan.article_language:
            link = f"{link} {self.language_marker(plan.article_language)}"
        return link

    def _answer(self, plan: DraftPlan, hello: str, ack: str) -> list[tuple[list[str], list[str]]]:
        """Drafts that answer from the article: its steps (or summary) and link, then the questions."""
        art = plan.article
        assert art is not None
        cited = [art.article_id]
        link = self.link(plan)
        asks = self.join(plan.asks)
        ask = self.render("ask_missing_short", asks=asks) if plan.asks else ""
        tail = "\n".join(p for p in (link, ask) if p)  # the question on its own line, after the link
        opening = f"{hello} {ack}"
        out: list[tuple[list[str], list[str]]] = []
        if plan.article_in_language:
            steps = numbered(plan.steps, MAX_DRAFT_CHARS - len(opening) - len(tail) - 4)
            if steps:
                out.append(([opening, steps, tail], cited))
            if art.summary:
                budget = MAX_DRAFT_CHARS - len(ack) - len(tail) - 4
                summary = trim_to(art.summary, budget)
                if summary:
                    out.append(([ack, summary, tail], cited))
        if tail:
            out.append(([opening, tail], cited))
        return out

    def drafts(self, plan: DraftPlan, max_drafts: int = MAX_DRAFTS) -> list[TemplateDraft]:
        """Which drafts, in order: a standalone reply; a handoff; an answer from the article (steps, link and
        the questions); the questions alone; the article's summary and link; "a colleague will check"."""
        d = self.data
        hello = d.hello_negative if plan.negative else d.hello
        ack = d.ack.get(plan.intent) or d.ack["out_of_scope"]
        out: list[tuple[list[str], list[str]]] = []  # (paragraphs, cited ids)

        if plan.intent in d.standalone and not plan.needs_human:
            out.append(([d.standalone[plan.intent]], []))
        elif plan.needs_human:
            handoff = d.handoff_urgent if plan.urgent else d.handoff
            ask = [self.render("handoff_ask", asks=self.join(plan.asks))] if plan.asks else []
            out.append(([f"{hello} {ack}", " ".join([handoff, *ask])], []))
            out.append(([" ".join([ack, handoff, *ask])], []))
        elif plan.answers and plan.article is not None and (answer := self._answer(plan, hello, ack)):
            out.extend(answer)
        elif plan.asks:
            asks = self.join(plan.asks)
            out.append(([f"{hello} {ack}", self.render("ask_missing", asks=asks)], []))
            out.append(([f"{self.render('ask_missing_short', asks=asks)} {d.closing_short}"], []))
        elif plan.article is not None:
            art = plan.article
            link = self.link(plan)
            cited = [art.article_id]
            if plan.article_in_language and art.summary:
                budget = MAX_DRAFT_CHARS - len(hello) - len(ack) - len(link) - 6
                summary = trim_to(art.summary, budget)
                out.append(([f"{hello} {ack}", summary, link], cited))
                out.append(([f"{ack} {trim_to(art.summary, MAX_DRAFT_CHARS - len(ack) - 1)}"], cited))
            if link:
                out.append(([f"{hello} {ack}", link], cited))
        if not out:
            out.append(([f"{hello} {ack}", d.no_article], []))

        drafts: list[TemplateDraft] = []
        for paragraphs, cited in out[:max_drafts]:
            text = "\n\n".join(p for p in paragraphs if p)
            if len(text) > MAX_DRAFT_CHARS:
                text = trim_to(text, MAX_DRAFT_CHARS)
            drafts.append(TemplateDraft(text=text, cited_article_ids=cited))
        return drafts


class TemplateLibrary:
    """All bundled languages; `for_language(code)` falls back to the default language."""

    def __init__(self, directory: Path = TEMPLATES_DIR, default_language: str = "en") -> None:
        env = Environment(undefined=StrictUndefined, autoescape=False)
        self.sets: dict[str, TemplateSet] = {}
        for path in sorted(Path(directory).glob("*.yaml")):
            try:
                data = LanguageTemplates.model_validate(yamlfile.safe_load(path.read_text(encoding="utf-8")))
            except (OSError, yamlfile.YAMLError, ValidationError) as exc:
                raise InvalidInput(f"invalid reply templates {path}: {exc}") from exc
            if "out_of_scope" not in data.ack:
                raise InvalidInput(f"invalid reply templates {path}: `ack.out_of_scope` is required")
            self.sets[data.language] = TemplateSet(data, env)
        if default_language not in self.sets:
            raise InvalidInput(
                f"no reply templates for the default language {default_language!r} in {directory}"
            )
        self.default_language = default_language

    @property
    def languages(self) -> list[str]:
        return sorted(self.sets)

    def for_language(self, code: str) -> TemplateSet:
        """The templates of `code` (a BCP 47 tag): the tag itself, then language-script (`hi-Latn-IN` →
        `hi-Latn`), then the language (`zh-Hant-TW` → `zh`) unless the tag asks for Latin script and the
        language's file is in another one; else the default language's."""
        tag = canonical_tag(code) or ""
        parts = tag.split("-")
        script = next((p for p in parts[1:] if len(p) == 4 and p.isalpha()), None)
        candidates = [tag]
        if script:
            candidates.append(f"{parts[0]}-{script}")
        for candidate in candidates:
            if candidate in self.sets:
                return self.sets[candidate]
        primary = self.sets.get(parts[0])
        if primary is not None and not (script == "Latn" and not primary.latin):
            return primary
        return self.sets[self.default_language]
