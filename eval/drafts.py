"""Draft evaluation: run labelled customer messages through triage, retrieval and the drafter, and score the
drafts.

Rows of `eval/data/drafts.jsonl`: `{"id", "text", "locale", "language", "intent", "relevant_article_ids":
[...], "needs_human": bool}` (`language` defaults to the locale's primary subtag).

Each case goes through the same code as `POST /v1/drafts` (`service.drafting.router.draft_request`, with the
triage result computed first so intent accuracy is measured too). Metrics, each a share in [0, 1] unless said
otherwise:

* `language_match` — drafts whose detected language (the service's own `LanguageDetector`) is the expected
one;
  drafts too short to detect count as matching only when the response's `language` is the expected one.
* `citation_validity` — cited article ids that exist in the knowledge base (a draft that cites nothing cites
  nothing invalid). `citation_relevance` — drafts citing at least one labelled relevant article, over the
  drafts of cases that have relevant articles and cite anything.
* `groundedness` — share of the *assessed* sentences of citing drafts that are supported by a cited article.
  Definition: a draft is split into sentences (`.`, `!`, `?`, line breaks); URLs are removed; a sentence is
  **excluded** from assessment when it is a question (it asks, it does not claim), contains a placeholder like
  `[ORDER_1]`, or has fewer than `MIN_CONTENT_WORDS` content words (greetings, thanks, sign-offs, "details
  here"). An assessed sentence is **supported** when either (a) its maximum cosine similarity (the service's
  embedding model) to the sentences of the cited articles (title, summary and body) is at least `TAU` = 0.60,
  or (b) at least `THETA` = 0.60 of its content words (lower-cased, accents kept, stop words of the draft's
  language removed, words of 3+ letters) occur in the cited articles. Drafts that cite no article are counted
  in `uncited_draft_rate`, not in groundedness.
* `tone_pass` — drafts with no tone finding of severity `warn` or `block`.
* `length_compliance` — drafts of at most `MAX_DRAFT_CHARS` characters and `MAX_PARAGRAPHS` paragraphs.
* `needs_human_agreement` — cases whose `needs_human` equals the label; `handoff_recall` — labelled handoffs
the
  service also handed off (the expensive miss).
* `intent_accuracy` and `retrieval_hit@3` (a labelled relevant article among the drafts' cited ids or the
top-3
  suggestions) give context; `latency_ms` is per case (triage + retrieval + drafting), informational.

The LLM path is chosen by the caller (`evaluate(..., llm_mode=...)`): `template` (no LLM), `replay` (a vcrpy
cassette answers the LLM calls; a request not in the cassette fails like a transport error, so the draft falls
back to templates and is counted in `llm_outcomes`), or `live` (the configured endpoint, optionally recording
a cassette).
"""

from __future__ import annotations

import json
import re
import statistics
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bm25s import stopwords as bm25_stopwords
from pydantic import BaseModel, Field

from eval.cases import load_jsonl_cases
from service.drafting.models import MAX_DRAFT_CHARS, MAX_PARAGRAPHS, DraftCreate, DraftsRead
from service.errors import NotFound
from service.tone.models import Severity
from service.triage.language import primary_subtag
from service.triage.models import TriageRequest

TAU = 0.60
THETA = 0.60
MIN_CONTENT_WORDS = 4
SUGGEST_K = 3

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(bm25_stopwords.STOPWORDS_EN_PLUS),
    "es": frozenset(bm25_stopwords.STOPWORDS_SPANISH),
    "de": frozenset(bm25_stopwords.STOPWORDS_GERMAN),
    "fr": frozenset(bm25_stopwords.STOPWORDS_FRENCH),
    "pt": frozenset(bm25_stopwords.STOPWORDS_PORTUGUESE),
    "it": frozenset(bm25_stopwords.STOPWORDS_ITALIAN),
    "nl": frozenset(bm25_stopwords.STOPWORDS_DUTCH),
}
_URL = re.compile(r"https?://\S+|\b[\w.-]+\.(?:example|com|org|net)(?:/\S*)?", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\[[A-Z_]+(?:_\d+)?\]")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_MARKDOWN = re.compile(r"[*_`#>|]|\]\([^)]*\)|^\s*\d+\.\s+|^\s*[-•]\s+", re.MULTILINE)


class DraftCase(BaseModel):
    id: str
    text: str = Field(min_length=1)
    locale: str | None = None
    language: str | None = Field(None, description="Expected draft language; default: the locale's subtag.")
    intent: str
    relevant_article_ids: list[str] = Field(default_factory=list)
    needs_human: bool

    @property
    def expected_language(self) -> str:
        return self.language or primary_subtag(self.locale) or "en"


def load_cases(path: Path) -> list[DraftCase]:
    return load_jsonl_cases(path, DraftCase, "draft case")


# -- groundedness
# ---------------------------------------------------------------------------------------------


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def content_words(text: str, language: str) -> list[str]:
    stop = _STOPWORDS.get(language, _STOPWORDS["en"])
    text = unicodedata.normalize("NFC", _URL.sub(" ", text)).lower()
    return [w for w in _WORD.findall(text) if w not in stop]


def assessable(sentence: str, language: str) -> bool:
    """False for questions, placeholders and short formulas (greetings, thanks, "details here: <url>")."""
    stripped = sentence.strip()
    if stripped.endswith(("?", "？")) or stripped.startswith("¿") or _PLACEHOLDER.search(stripped):
        return False
    return len(content_words(stripped, language)) >= MIN_CONTENT_WORDS


def article_sentences(article: Any) -> list[str]:
    """Title, summary and body of an `ArticleRead`, as plain sentences (Markdown marks removed)."""
    body = _MARKDOWN.sub(" ", str(getattr(article, "body", "") or ""))
    parts = [str(getattr(article, "title", "") or ""), str(getattr(article, "summary", "") or "")]
    return [s for s in (split_sentences(" \n".join(parts)) + split_sentences(body)) if len(s) > 3]


class GroundednessJudge:
    """Scores draft sentences against article sentences; embeddings come from the service's embedder."""

    def __init__(
        self, encode: Callable[[list[str]], np.ndarray], *, tau: float = TAU, theta: float = THETA
    ) -> None:
        self.encode = encode
        self.tau = tau
        self.theta = theta

    def judge(self, draft: str, articles: Sequence[Any], language: str) -> list[dict]:
        """One verdict per assessed sentence: `{sentence, max_cosine, overlap, supported}`."""
        sentences = [s for s in split_sentences(draft) if assessable(s, language)]
        if not sentences or not articles:
            return []
        source = [s for a in articles for s in article_sentences(a)]
        source_words = {w for s in source for w in content_words(s, language)}
        cleaned = [_URL.sub(" ", s).strip() for s in sentences]
        vectors = self.encode(cleaned + source) if source else None
        verdicts = []
        for i, (sentence, clean) in enumerate(zip(sentences, cleaned, strict=True)):
            max_cos = 0.0
            if vectors is not None:
                sims = vectors[len(cleaned) :] @ vectors[i]
                max_cos = float(np.max(sims)) if sims.size else 0.0
            words = content_words(clean, language)
            overlap = sum(1 for w in words if w in source_words) / len(words) if words else 0.0
            verdicts.append(
                {
                    "sentence": sentence,
                    "max_cosine": round(max_cos, 3),
                    "overlap": round(overlap, 3),
                    "supported": max_cos >= self.tau or overlap >= self.theta,
                }
            )
        return verdicts


# -- the run
# --------------------------------------------------------------------------------------------------


def _share(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "mean": 0.0}
    arr = np.asarray(values)
    return {
        "p50": round(float(np.percentile(arr, 50)), 1),
        "p95": round(float(np.percentile(arr, 95)), 1),
        "mean": round(float(statistics.fmean(values)), 1),
    }


def evaluate(
    cases: Sequence[DraftCase],
    container: Any,
    *,
    llm_mode: str,
    llm_note: str = "",
    replay_miss: tuple[type[Exception], ...] = (),
    template_container: Any = None,
) -> dict:
    """Run every case through `container` (a `service.container.Container`) and score the drafts.

    `replay_miss`: the exception a cassette raises for a request it did not record; such a case is drafted
    again by `template_container` (no LLM), as the service would when its LLM is unreachable, and counted as
    `cassette_miss`.
    """
    from service.drafting.router import draft_request
    from service.kb.for_triage import suggest_for_triage

    triage, kb, drafter = container.triage, container.kb, container.drafter
    judge = GroundednessJudge(container.embedder.encode)
    detector = triage.language
    totals: Counter = Counter()
    latencies: list[float] = []
    outcomes: Counter = Counter()
    generators: Counter = Counter()
    rows = []
    article_cache: dict[str, Any] = {}

    def article(article_id: str) -> Any | None:
        if article_id not in article_cache:
            try:
                article_cache[article_id] = kb.get(article_id)
            except NotFound:
                article_cache[article_id] = None
        return article_cache[article_id]

    for case in cases:
        t0 = time.perf_counter()
        tri = triage.triage(TriageRequest(text=case.text, locale=case.locale))
        body = DraftCreate(text=case.text, locale=case.locale, triage=tri)
        try:
            result: DraftsRead = draft_request(body, triage, kb, drafter)
        except replay_miss:
            outcomes["cassette_miss"] += 1
            result = draft_request(
                body, template_container.triage, template_container.kb, template_container.drafter
            )
        latencies.append((time.perf_counter() - t0) * 1000)
        suggested = [h.article_id for h in suggest_for_triage(kb, case.text, case.locale, tri, k=SUGGEST_K)]
        outcomes[
            result.llm_outcome.split(":")[0]
            if result.llm_outcome.startswith("fallback")
            else result.llm_outcome
        ] += 1
        expected_lang = case.expected_language
        relevant = set(case.relevant_article_ids)
        totals["cases"] += 1
        totals["intent_correct"] += tri.intent.name == case.intent
        totals["nh_agree"] += result.needs_human == case.needs_human
        totals["nh_expected"] += case.needs_human
        totals["nh_caught"] += case.needs_human and result.needs_human
        cited_any: set[str] = set()
        draft_rows = []
        for draft in result.drafts:
            generators[str(draft.generator)] += 1
            totals["drafts"] += 1
            found = detector.detect_text(draft.text, expected_lang)
            lang_ok = (found[0] if found else result.language) == expected_lang
            totals["lang_ok"] += lang_ok
            totals["tone_ok"] += not any(
                f.severity in (Severity.warn, Severity.block) for f in draft.tone_findings
            )
            paragraphs = [p for p in re.split(r"\n\s*\n", draft.text) if p.strip()]
            totals["length_ok"] += len(draft.text) <= MAX_DRAFT_CHARS and len(paragraphs) <= MAX_PARAGRAPHS
            cited = list(dict.fromkeys(draft.cited_article_ids))
            cited_any.update(cited)
            totals["citations"] += len(cited)
            valid = [a for a in (article(c) for c in cited) if a is not None]
            totals["citations_valid"] += len(valid)
            verdicts: list[dict] = []
            if cited:
                totals["citing_drafts"] += 1
                if relevant:
                    totals["citing_drafts_with_labels"] += 1
                    totals["citing_relevant"] += bool(relevant & set(cited))
                verdicts = judge.judge(draft.text, valid, expected_lang)
                totals["assessed"] += len(verdicts)
                totals["supported"] += sum(v["supported"] for v in verdicts)
            else:
                totals["uncited_drafts"] += 1
            draft_rows.append(
                {
                    "text": draft.text,
                    "generator": str(draft.generator),
                    "cited": cited,
                    "language_ok": lang_ok,
                    "detected_language": found[0] if found else None,
                    "tone_findings": [f"{f.rule}:{f.severity}" for f in draft.tone_findings],
                    "sentences": verdicts,
                }
            )
        if relevant:
            totals["cases_with_labels"] += 1
            totals["retrieval_hit"] += bool(relevant & (set(suggested) | cited_any))
        rows.append(
            {
                "id": case.id,
                "text": case.text,
                "locale": case.locale,
                "expected_intent": case.intent,
                "intent": tri.intent.name,
                "needs_human": result.needs_human,
                "expected_needs_human": case.needs_human,
                "llm_outcome": result.llm_outcome,
                "prompt_version": result.prompt_version,
                "suggested": suggested,
                "drafts": draft_rows,
            }
        )

    metrics = {
        "cases": totals["cases"],
        "drafts": totals["drafts"],
        "language_match": _share(totals["lang_ok"], totals["drafts"]),
        "citation_validity": _share(totals["citations_valid"], totals["citations"])
        if totals["citations"]
        else 1.0,
        "citation_relevance": _share(totals["citing_relevant"], totals["citing_drafts_with_labels"]),
        "groundedness": _share(totals["supported"], totals["assessed"]),
        "assessed_sentences": totals["assessed"],
        "uncited_draft_rate": _share(totals["uncited_drafts"], totals["drafts"]),
        "tone_pass": _share(totals["tone_ok"], totals["drafts"]),
        "length_compliance": _share(totals["length_ok"], totals["drafts"]),
        "needs_human_agreement": _share(totals["nh_agree"], totals["cases"]),
        "handoff_recall": _share(totals["nh_caught"], totals["nh_expected"]),
        "intent_accuracy": _share(totals["intent_correct"], totals["cases"]),
        "retrieval_hit@3": _share(totals["retrieval_hit"], totals["cases_with_labels"]),
        "latency_ms": _percentiles(latencies),
    }
    return {
        "llm_mode": llm_mode,
        "llm_note": llm_note,
        "generators": dict(generators),
        "llm_outcomes": dict(outcomes),
        "definition": {
            "tau": TAU,
            "theta": THETA,
            "min_content_words": MIN_CONTENT_WORDS,
            "max_chars": MAX_DRAFT_CHARS,
            "max_paragraphs": MAX_PARAGRAPHS,
        },
        "metrics": metrics,
        "latencies_ms": [round(x, 1) for x in latencies],
        "cases": rows,
    }


def cassette_base_url(cassette: Path) -> str | None:
    """The OpenAI-compatible base URL a vcrpy cassette was recorded against (from its first request)."""
    import yaml

    data = yaml.safe_load(Path(cassette).read_text(encoding="utf-8")) or {}
    for interaction in data.get("interactions") or []:
        uri = str(interaction.get("request", {}).get("uri", ""))
        if "/chat/completions" in uri:
            return uri.split("/chat/completions")[0]
    return None


def write_json(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
