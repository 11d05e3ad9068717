"""Which articles a triaged message gets: the intent's first when the intent is confident, else the best of
all; each with its intents and numbered steps, so an offline draft can answer with them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.errors import NotFound
from service.kb import markdown
from service.kb.models import ArticleHit
from service.triage.language import primary_subtag
from service.triage.models import TriageRead

if TYPE_CHECKING:
    import numpy as np

    from service.kb.service import KnowledgeBase

MAX_STEPS = 8


def search_locale(request_locale: str | None, triage: TriageRead) -> str:
    """Search the customer's locale when it matches the detected language, else the detected language."""
    if request_locale and primary_subtag(request_locale) == triage.language.code:
        return request_locale
    return triage.language.code


def article_intent(triage: TriageRead, min_confidence: float) -> str | None:
    """The intent whose articles come first; None (every article competes) when out of scope or unsure.

    An unsure intent (a message between two intents, or half about something the taxonomy lacks) would
    otherwise hide the right article behind the wrong intent's.
    """
    if triage.intent.out_of_scope or triage.intent.confidence < min_confidence:
        return None
    return triage.intent.name


def article_steps(body: str, limit: int = MAX_STEPS) -> list[str]:
    """The items of the first numbered list of an article body, as plain text (markup and links dropped).

    Only an item's own first paragraph counts: nested lists ("- Drop-off: ...") are details of the step, not
    steps. An article without a numbered list has no steps.
    """
    tokens = markdown.parse(body)
    steps: list[str] = []
    depth = 0  # nesting of lists inside the first ordered list
    inside = False
    item_open = False
    for tok in tokens:
        if not inside:
            if tok.type == "ordered_list_open":
                inside, depth = True, 1
            continue
        if tok.type in ("ordered_list_open", "bullet_list_open"):
            depth += 1
        elif tok.type in ("ordered_list_close", "bullet_list_close"):
            depth -= 1
            if depth == 0:
                break
        elif tok.type == "list_item_open" and depth == 1:
            item_open = True
        elif tok.type == "inline" and depth == 1 and item_open:
            text = markdown.inline_text(tok)
            if text:
                steps.append(text)
            item_open = False
    return steps[:limit]


def with_article_details(kb: KnowledgeBase, hits: list[ArticleHit]) -> list[ArticleHit]:
    """The hits with their articles' intents and numbered steps (an article gone since the search keeps
    none)."""
    out = []
    for hit in hits:
        try:
            article = kb.get(hit.article_id)
        except NotFound:
            out.append(hit)
            continue
        out.append(hit.with_details(article.intents, article_steps(article.body)))
    return out


def suggest_for_triage(
    kb: KnowledgeBase,
    text: str,
    locale: str | None,
    triage: TriageRead,
    query_vector: np.ndarray | None = None,
    k: int | None = None,
) -> list[ArticleHit]:
    """The top articles for a triaged message (`REPLYDESK_KB_INTENT_MIN_CONFIDENCE` decides the intent
    filter), in the customer's language first (`service.kb.retrieval`), with intents and steps."""
    intent = article_intent(triage, kb.settings.kb_intent_min_confidence)
    hits = kb.suggest(
        text, locale=search_locale(locale, triage), intent=intent, k=k, query_vector=query_vector
    )
    return with_article_details(kb, hits)
