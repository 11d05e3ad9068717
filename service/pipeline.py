"""The message pipeline: triage → article retrieval → drafts (with tone checks).

One function serves `POST /v1/triage`, `replydesk triage` and ingest (`POST /v1/messages`), so every entry point
returns the same thing for the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from service.drafting.models import DraftsRead
from service.kb.models import ArticleHit
from service.triage.language import primary_subtag
from service.triage.models import TriageRead, TriageRequest

if TYPE_CHECKING:
    import numpy as np

    from service.container import Container


class TriagePipelineRead(TriageRead):
    """Triage plus the articles found for the message and the reply drafts grounded in them."""

    articles: list[ArticleHit] = Field(
        default_factory=list,
        description="Top help articles: the intent's first when it is confident "
        "(REPLYDESK_KB_INTENT_MIN_CONFIDENCE), else the best of all articles.",
    )
    drafts: DraftsRead | None = Field(None, description="1–3 reply drafts in the customer's language.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **TriageRead.model_config["json_schema_extra"]["examples"][0],
                    "articles": ArticleHit.model_config["json_schema_extra"]["examples"],
                    "drafts": DraftsRead.model_config["json_schema_extra"]["examples"][0],
                }
            ]
        }
    )


def search_locale(request_locale: str | None, triage: TriageRead) -> str:
    """Search the customer's locale when it matches the detected language, else the detected language."""
    if request_locale and primary_subtag(request_locale) == triage.language.code:
        return request_locale
    return triage.language.code


def article_intent(triage: TriageRead, min_confidence: float) -> str | None:
    """The intent whose articles come first; None (every article competes) when out of scope or unsure.

    An unsure intent (a message between two intents, or half about something the taxonomy lacks) would otherwise
    hide the right article behind the wrong intent's.
    """
    if triage.intent.out_of_scope or triage.intent.confidence < min_confidence:
        return None
    return triage.intent.name


def suggest_articles(
    container: Container,
    text: str,
    locale: str | None,
    triage: TriageRead,
    query_vector: np.ndarray | None = None,
    k: int | None = None,
) -> list[ArticleHit]:
    intent = article_intent(triage, container.settings.kb_intent_min_confidence)
    return container.kb.suggest(
        text, locale=search_locale(locale, triage), intent=intent, k=k, query_vector=query_vector
    )


def run_pipeline(
    container: Container, request: TriageRequest, *, facts: Sequence[Any] = (), drafts: bool = True
) -> TriagePipelineRead:
    """`facts`: context-provider facts about the message (e.g. the order's status), given to the drafter."""
    triage, vector = container.triage.triage_with_embedding(request)
    articles = suggest_articles(container, request.text, request.locale, triage, vector)
    drafted = (
        container.drafter.draft(request.text, triage, articles, request.history, request.locale, facts)
        if drafts
        else None
    )
    return TriagePipelineRead(**triage.model_dump(), articles=articles, drafts=drafted)
