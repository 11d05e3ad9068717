"""Which articles a triaged message gets: the intent's first when the intent is confident, else the best of
all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.kb.models import ArticleHit
from service.triage.language import primary_subtag
from service.triage.models import TriageRead

if TYPE_CHECKING:
    import numpy as np

    from service.kb.service import KnowledgeBase


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


def suggest_for_triage(
    kb: KnowledgeBase,
    text: str,
    locale: str | None,
    triage: TriageRead,
    query_vector: np.ndarray | None = None,
    k: int | None = None,
) -> list[ArticleHit]:
    """The top articles for a triaged message (`REPLYDESK_KB_INTENT_MIN_CONFIDENCE` decides the intent
    filter)."""
    intent = article_intent(triage, kb.settings.kb_intent_min_confidence)
    return kb.suggest(
        text, locale=search_locale(locale, triage), intent=intent, k=k, query_vector=query_vector
    )
