"""POST /v1/drafts: reply drafts for one message, with explicit articles and history if the caller has
them."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from service.drafting.deps import DrafterDep, LLMWorkDep
from service.drafting.drafter import Drafter
from service.drafting.models import DraftCreate, DraftsRead
from service.drafting.offload import OVERLOADED_RESPONSE
from service.errors import InvalidInput, NotFound
from service.kb.deps import KnowledgeBaseDep
from service.kb.for_triage import suggest_for_triage
from service.kb.models import ArticleHit, ArticleRead
from service.kb.service import KnowledgeBase
from service.triage.deps import TriageServiceDep
from service.triage.models import TriageRequest
from service.triage.service import TriageService

router = APIRouter(tags=["drafting"])


@router.post(
    "/drafts",
    response_model=DraftsRead,
    summary="Draft 1-3 replies (LLM when configured, templates otherwise)",
    responses={422: {"description": "Invalid body or an unknown article id"}, **OVERLOADED_RESPONSE},
)
async def create_drafts(
    body: DraftCreate,
    triage_service: TriageServiceDep,
    kb: KnowledgeBaseDep,
    drafter: DrafterDep,
    work: LLMWorkDep,
) -> DraftsRead:
    """Triage runs first unless `triage` is given; articles are the knowledge base's top hits for the message
    unless `article_ids` names them. An LLM failure never fails the request: the drafts then come from
    templates (each draft's `generator`, and `llm_outcome` says why)."""
    return await work.run(draft_request, body, triage_service, kb, drafter)


def draft_request(
    body: DraftCreate, triage_service: TriageService, kb: KnowledgeBase, drafter: Drafter
) -> DraftsRead:
    """What `POST /v1/drafts` answers, computed on the calling thread (blocking: it may wait for the LLM)."""
    vector = None
    triage = body.triage
    if triage is None:
        triage, vector = triage_service.triage_with_embedding(
            TriageRequest(
                text=body.text,
                locale=body.locale,
                channel=body.channel,
                history=body.history,
                country=body.country,
                customer_name=body.customer_name,
            )
        )
    if body.article_ids is not None:
        named: list[ArticleRead] = []
        for article_id in body.article_ids:
            try:
                named.append(kb.get(article_id))
            except NotFound as exc:
                raise InvalidInput(
                    f"article_ids: no article {article_id!r}", details={"article_id": article_id}
                ) from exc
        articles: Sequence[ArticleRead | ArticleHit] = named
    # the intent's articles first, then any; [] without an index (drafts then say a colleague will check)
    else:
        articles = suggest_for_triage(kb, body.text, body.locale, triage, vector)
    return drafter.draft(
        body.text,
        triage,
        articles,
        body.history,
        body.locale,
        country=body.country,
        customer_name=body.customer_name,
    )
