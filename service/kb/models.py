"""Knowledge base schemas: articles (Base -> Upsert -> Read), search hits, build reports."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, computed_field
from pydantic.config import JsonDict

from service.kb.articles import language_of

_ARTICLE_EXAMPLE: JsonDict = {
    "title": "Track your order",
    "locale": "en",
    "intents": ["order_status"],
    "tags": ["orders", "tracking"],
    "url": "https://help.northwind.example/en/orders/track-your-order",
    "summary": "To track an order, open Orders in the Northwind app, tap the order, then tap Track package.",
    "updated_at": "2025-03-02",
    "body": (
        "## Track in the app\n\n1. Open the Northwind app.\n2. Tap **Orders**.\n3. Tap **Track package**.\n"
    ),
}


class ArticleBase(BaseModel):
    title: str = Field(description="Short title shown in chat previews (≤ 70 characters recommended).")
    locale: str = Field(description="BCP 47 locale of the article, e.g. `en`, `es-MX`, `pt-BR`.")
    intents: list[str] = Field(description="Taxonomy intents this article answers.")
    tags: list[str] = Field(default_factory=list, description="Free tags usable as search filters.")
    url: str = Field(description="Public mobile page of the article (https).")
    summary: str = Field(description="≤ 300 characters, sendable verbatim as a chat reply.")
    updated_at: str = Field(description="ISO 8601 date of the last edit.")
    body: str = Field(description="Markdown body: short sections with steps.")


class ArticleUpsert(ArticleBase):
    """Body of `PUT /v1/kb/articles/{id}` as JSON (the path gives the id; a body `id` must match it)."""

    id: str | None = Field(None, description="Optional; must equal the id in the path.")
    model_config = ConfigDict(json_schema_extra={"examples": [_ARTICLE_EXAMPLE]})


class ArticleRead(ArticleBase):
    id: str
    source: str = Field(description="File name of the article in the articles directory.")
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"id": "track-your-order", **_ARTICLE_EXAMPLE, "source": "track-your-order.md"}]
        }
    )


_LANGUAGE_DOC = (
    "ISO 639 language of the article (the locale's primary subtag); a draft in another language links the "
    'article marked with this language, e.g. "(in English)".'
)


class ArticleHit(BaseModel):
    """One retrieved article (its chunks deduplicated)."""

    article_id: str
    title: str
    url: str
    summary: str = Field(description="Sendable verbatim in a chat reply.")
    snippet: str = Field(description="Text of the best-matching section, cut to about 220 characters.")
    score: float = Field(ge=0, le=1, description="Fused rank score; 1.0 = ranked first by every retriever.")
    matched_section: str = Field(description='Heading path of the best-matching section (`""` = summary).')
    locale: str = Field(
        description="Locale of the article (differs from the request after a locale fallback)."
    )
    # Not part of the API: what an offline draft needs to answer from the article (set by `with_details`).
    _intents: tuple[str, ...] = PrivateAttr(default=())
    _steps: tuple[str, ...] = PrivateAttr(default=())

    @computed_field(description=_LANGUAGE_DOC)  # type: ignore[prop-decorator]
    @property
    def language(self) -> str:
        return language_of(self.locale)

    @property
    def intents(self) -> tuple[str, ...]:
        """Taxonomy intents of the article (known for articles suggested to a triaged message)."""
        return self._intents

    @property
    def steps(self) -> tuple[str, ...]:
        """The numbered steps of the article's first how-to list, as plain text (same)."""
        return self._steps

    def with_details(self, intents: Sequence[str], steps: Sequence[str]) -> ArticleHit:
        """A copy that knows the article's intents and steps (for drafts; never serialised)."""
        hit = self.model_copy()
        hit._intents, hit._steps = tuple(intents), tuple(steps)
        return hit

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "article_id": "late-delivery",
                    "title": "Late or delayed delivery",
                    "url": "https://help.northwind.example/en/delivery/late-delivery",
                    "summary": (
                        "Sorry your order is late. Check the latest scan under Orders > Track package."
                    ),
                    "snippet": (
                        "Message us if either is true: There's been no new tracking scan for 3 business days."
                    ),
                    "score": 0.92,
                    "matched_section": "When to contact us",
                    "locale": "en",
                    "language": "en",
                }
            ]
        }
    )


class KBSearchRead(BaseModel):
    query: str
    locale: str | None = Field(description="Locale asked for.")
    language: str = Field(description="Language whose articles were searched.")
    fallback: bool = Field(
        description="True when no article matched the locale and the default locale was used."
    )
    hits: list[ArticleHit]


class BuildRead(BaseModel):
    """What a (re)build did. `published` is false when nothing had changed."""

    build_id: str
    published: bool
    articles: int
    chunks: int
    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    unchanged: int = 0
    embedded_chunks: int = Field(0, description="Chunks embedded by this build (the rest were reused).")
    reused_chunks: int = 0
    skipped: dict[str, list[str]] = Field(
        default_factory=dict, description="Article files left out because they fail lint."
    )
    index_type: str
    duration_s: float
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "build_id": "20250312T101500123456Z-a1b2c3",
                    "published": True,
                    "articles": 52,
                    "chunks": 214,
                    "added": [],
                    "updated": ["late-delivery"],
                    "removed": [],
                    "unchanged": 51,
                    "embedded_chunks": 4,
                    "reused_chunks": 210,
                    "skipped": {},
                    "index_type": "flat",
                    "duration_s": 0.41,
                }
            ]
        }
    )


class ArticleUpsertRead(BaseModel):
    article: ArticleRead
    created: bool
    build: BuildRead


class ArticleDeleteRead(BaseModel):
    deleted: str
    build: BuildRead
