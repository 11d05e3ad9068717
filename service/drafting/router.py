"""POST /v1/drafts: reply drafts for one message, with explicit articles and history if the caller has them."""

from __future__ import annotations

from fastapi import APIRouter

from service.container import Container
from service.deps import ContainerDep, DrafterDep, KnowledgeBaseDep
from service.drafting.models import DraftCreate, DraftsRead
from service.errors import InvalidInput, NotFound
from service.pipeline import suggest_articles
from service.triage.models import TriageRequest

router = APIRouter(tags=["drafting"])


@router.post(
    "/drafts",
    response_model=DraftsRead,
    summary="Draft 1-3 replies (LLM when configured, templates otherwise)",
    responses={422: {"description": "Invalid body or an unknown article id"}},
)
def create_drafts(
    body: DraftCreate, container: ContainerDep, kb: KnowledgeBaseDep, drafter: DrafterDep
) -> DraftsRead:
    """Triage runs first unless `triage` is given; articles are the knowledge base's top hits for the message
    unless `article_ids` names them. An LLM failure never fails the request: the drafts then come from templates
    (each draft's `generator`, and `llm_outcome` says why)."""
    vector = None
    triage = body.triage
    if triage is None:
        triage, vector = container.triage.triage_with_embedding(
            TriageRequest(text=body.text, locale=body.locale, channel=body.channel, history=body.history)
        )
    if body.article_ids is not None:
        articles = []
        for article_id in body.article_ids:
            try:
                articles.append(kb.get(article_id))
            except NotFound as exc:
                raise InvalidInput(
                    f"article_ids: no article {article_id!r}", details={"article_id": article_id}
                ) from exc
    else:  # the intent's articles first, then any; [] without an index (drafts then say a colleague will check)
        articles = suggest_articles(container, body.text, body.locale, triage, vector)
    return drafter.draft(body.text, triage, articles, body.history, body.locale)


def llm_health(container: Container) -> dict:
    """GET /health `llm`: whether drafts can come from an LLM, without calling it."""
    settings = container.settings
    if "drafter" not in container.__dict__:
        return {
            "status": "not_loaded",
            "detail": {
                "configured": bool(settings.llm_base_url),
                "model": settings.llm_model if settings.llm_base_url else None,
            },
        }
    return container.drafter.health()


Container.health_checks["llm"] = llm_health
