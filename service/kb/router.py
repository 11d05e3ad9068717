"""Knowledge base endpoints: search, read, upsert, delete, reindex. Every change is searchable on return."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from service.auth.deps import require_roles
from service.auth.models import Role
from service.errors import InvalidInput
from service.kb.deps import KnowledgeBaseDep
from service.kb.models import (
    ArticleDeleteRead,
    ArticleRead,
    ArticleUpsert,
    ArticleUpsertRead,
    BuildRead,
    KBSearchRead,
)

router = APIRouter(prefix="/kb", tags=["knowledge base"])
# Reading is open to every analysis role and to editors; editing the knowledge base is for editors (and
# admins). Integration keys can do neither: they travel in channel callback URLs.
READERS = [Depends(require_roles(Role.agent, Role.evaluator, Role.auditor, Role.editor))]
EDITORS = [Depends(require_roles(Role.editor))]

MARKDOWN_TYPES = ("text/markdown", "text/x-markdown", "text/plain")
MAX_ARTICLE_BYTES = 200_000
ArticleId = Annotated[
    str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$", description="Article id (file slug).")
]

_MARKDOWN_EXAMPLE = """---
title: Track your order
locale: en
intents: [order_status]
tags: [orders, tracking]
url: https://help.northwind.example/en/orders/track-your-order
summary: Open Orders in the Northwind app, tap the order, then tap Track package.
updated_at: 2025-03-02
---

## Track in the app

1. Open the Northwind app.
2. Tap **Orders**, then **Track package**.
"""

_UPSERT_BODY = {
    "requestBody": {
        "required": True,
        "description": "The article as Markdown with YAML front matter (`text/markdown`), or as JSON.",
        "content": {
            "text/markdown": {"schema": {"type": "string"}, "example": _MARKDOWN_EXAMPLE},
            # Inline: the body is read by hand (two media types), so FastAPI registers no component for it.
            "application/json": {"schema": ArticleUpsert.model_json_schema()},
        },
    }
}


@router.get(
    "/search",
    response_model=KBSearchRead,
    summary="Hybrid search of help articles",
    dependencies=READERS,
)
def search_articles(
    kb: KnowledgeBaseDep,
    q: Annotated[str, Query(min_length=1, max_length=1000, description="What the customer asked.")],
    locale: Annotated[str | None, Query(max_length=35, description="BCP 47 locale, e.g. es-MX.")] = None,
    k: Annotated[int, Query(ge=1, le=50, description="How many articles.")] = 3,
    intent: Annotated[str | None, Query(max_length=64, description="Only articles for this intent.")] = None,
    tags: Annotated[list[str] | None, Query(description="Only articles carrying all of these tags.")] = None,
) -> KBSearchRead:
    return kb.search_page(q, locale=locale, k=k, intent=intent, tags=tags)


@router.get(
    "/articles/{article_id}",
    response_model=ArticleRead,
    summary="One article as indexed",
    dependencies=READERS,
)
def get_article(kb: KnowledgeBaseDep, article_id: ArticleId) -> ArticleRead:
    return kb.get(article_id)


@router.put(
    "/articles/{article_id}",
    response_model=ArticleUpsertRead,
    openapi_extra=_UPSERT_BODY,
    dependencies=EDITORS,
    summary="Create or replace an article (Markdown or JSON); 201 when created",
    responses={
        201: {"model": ArticleUpsertRead, "description": "Created"},
        422: {"description": "The article fails lint; `details.issues` lists every problem"},
    },
)
async def upsert_article(
    kb: KnowledgeBaseDep,
    request: Request,
    response: Response,
    article_id: ArticleId,
) -> ArticleUpsertRead:
    raw = await request.body()
    if len(raw) > MAX_ARTICLE_BYTES:
        raise InvalidInput(f"the article has {len(raw)} bytes; the limit is {MAX_ARTICLE_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("the article is not UTF-8 text") from exc
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    markdown, data = None, None
    if content_type in MARKDOWN_TYPES:
        markdown = text
    elif content_type in ("application/json", ""):
        try:
            data = ArticleUpsert.model_validate_json(text or "{}")
        except ValidationError as exc:
            problems = [
                {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                for e in exc.errors()
            ]
            raise InvalidInput(
                "; ".join(f"{p['field']}: {p['message']}" for p in problems), details={"problems": problems}
            ) from exc
    else:
        raise InvalidInput(
            f"unsupported content type `{content_type}`; send text/markdown or application/json"
        )
    article, created, build = await run_in_threadpool(kb.upsert, article_id, markdown=markdown, data=data)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return ArticleUpsertRead(article=article, created=created, build=build)


@router.delete(
    "/articles/{article_id}",
    response_model=ArticleDeleteRead,
    summary="Delete an article",
    dependencies=EDITORS,
)
def delete_article(kb: KnowledgeBaseDep, article_id: ArticleId) -> ArticleDeleteRead:
    return ArticleDeleteRead(deleted=article_id, build=kb.delete(article_id))


@router.post(
    "/reindex",
    response_model=BuildRead,
    summary="Rebuild the index from the articles directory",
    dependencies=EDITORS,
)
def reindex(
    kb: KnowledgeBaseDep,
    force: Annotated[bool, Query(description="Publish a new version even if nothing changed.")] = False,
) -> BuildRead:
    return kb.reindex(force=force)
