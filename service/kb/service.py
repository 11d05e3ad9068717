"""The `KnowledgeBase` component: search, read and edit help articles, with hot reload of the published index.

The Markdown files in `Settings.kb_articles_dir` are the source of truth. Edits through the API write the
file, run an incremental build (only changed chunks are embedded), publish the new version atomically and
switch this process to it before answering. Builds published by another process (`replydesk kb build`) are
picked up by every running service within `kb_reload_interval_s`: searches check the CURRENT pointer at most
that often.

Searches hold a reference to one immutable snapshot, so a reload never disturbs a search in flight. When the
index is missing or corrupt the service still runs: searches raise `IndexUnavailable` (503) and /health says
degraded; a corrupt new version never replaces a good one already loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from service.embeddings import Embedder, EmbeddingRoute, language_routes
from service.errors import IndexUnavailable, InvalidInput, NotFound
from service.kb import retrieval, store
from service.kb.articles import (
    Article,
    ArticleParseError,
    language_of,
    load_documents,
    parse_markdown,
    write_text_atomic,
)
from service.kb.lint import default_intent_names, errors_of, lint_documents
from service.kb.models import ArticleHit, ArticleRead, ArticleUpsert, BuildRead, KBSearchRead
from service.settings import Settings
from service.triage.language import primary_subtag

log = logging.getLogger("replydesk.kb")

MAX_QUERY_CHARS = 1000
OUT_OF_SCOPE = "out_of_scope"


def hit_model(hit: retrieval.Hit) -> ArticleHit:
    return ArticleHit(
        article_id=hit.article_id,
        title=hit.title,
        url=hit.url,
        summary=hit.summary,
        snippet=hit.snippet,
        score=min(1.0, max(0.0, hit.score)),
        matched_section=hit.matched_section,
        locale=hit.locale,
    )


def article_model(article: Article) -> ArticleRead:
    return ArticleRead(
        id=article.id,
        title=article.title,
        locale=article.locale,
        intents=list(article.intents),
        tags=list(article.tags),
        url=article.url,
        summary=article.summary,
        updated_at=article.updated_at,
        body=article.body,
        source=Path(article.source).name,
    )


def describe_index(index_dir: Path) -> dict:
    """Health of the published index from its manifest and file sizes, without loading it."""
    try:
        manifest = store.read_manifest(index_dir)
        version = Path(index_dir) / "versions" / manifest["build_id"]
        for name, meta in manifest["files"].items():
            size = (version / name).stat().st_size
            if size != meta["bytes"]:
                raise store.IndexCorrupt(f"{name} has {size} bytes, the manifest says {meta['bytes']}")
    except (store.IndexNotBuilt, store.IndexCorrupt) as exc:
        return {"status": "degraded", "detail": {"reason": str(exc), "index_dir": str(index_dir)}}
    except (OSError, KeyError, TypeError) as exc:
        return {
            "status": "degraded",
            "detail": {"reason": f"index is corrupt: {exc}", "index_dir": str(index_dir)},
        }
    return {"status": "ok", "detail": _manifest_detail(manifest)}


def _manifest_detail(manifest: dict) -> dict:
    return {
        "chunks": manifest.get("chunks"),
        "articles": manifest.get("articles"),
        "model": manifest.get("model_id"),
        "built_at": manifest.get("built_at"),
        "build_id": manifest.get("build_id"),
        "index_type": manifest.get("index_type"),
    }


def index_health(container) -> dict:
    """`Container.health_checks["index"]`: the loaded snapshot if the KB is in use, else the manifest on
    disk."""
    kb = container.__dict__.get("kb")
    if kb is not None:
        return kb.status()
    return describe_index(container.settings.resolved_index_dir)


class KnowledgeBase:
    def __init__(self, settings: Settings, embedder: Embedder | Callable[[], Embedder]) -> None:
        self.settings = settings
        self._embedder_source = embedder
        self._snapshot: store.Snapshot | None = None
        self._error: str | None = None
        self._failed_version: str | None = None
        self._last_check = float("-inf")
        self._load_lock = threading.Lock()
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------------ wiring
    @cached_property
    def embedder(self) -> Embedder:
        source = self._embedder_source
        return source if isinstance(source, Embedder) else source()

    @cached_property
    def routes(self) -> dict[str, EmbeddingRoute]:
        """Languages whose queries are ranked by one part of the combined model (`embedding_routes`)."""
        return language_routes(self.embedder, self.settings.embedding_routes)

    def query_vector(self, query: str, locale: str | None) -> np.ndarray:
        """The query's vector in the index's space: a locale with a route is embedded by its part alone."""
        route = self.routes.get(primary_subtag(locale) or "")
        if route is None:
            return self.embedder.encode([query])[0]
        return route.to_index_space(route.embedder.encode([query])[0])

    @property
    def articles_dir(self) -> Path:
        return Path(self.settings.kb_articles_dir)

    @property
    def index_dir(self) -> Path:
        return Path(self.settings.resolved_index_dir)

    @property
    def weights(self) -> retrieval.FusionWeights:
        s = self.settings
        return retrieval.FusionWeights(dense=s.kb_dense_weight, bm25=s.kb_bm25_weight, rrf_k=s.kb_rrf_k)

    @cached_property
    def known_intents(self) -> frozenset[str]:
        return default_intent_names(self.settings.intents_path)

    def build_options(self, *, skip_invalid: bool = False, force: bool = False) -> store.BuildOptions:
        s = self.settings
        return store.BuildOptions(
            index_type=s.kb_index_type,
            flat_max=s.kb_flat_max_chunks,
            recall_target=s.kb_recall_target,
            known_intents=self.known_intents,
            help_base_url=s.kb_help_base_url,
            allowed_link_hosts=s.kb_link_allowed_hosts,
            skip_invalid=skip_invalid,
            force=force,
        )

    # ------------------------------------------------------------------ loading / hot reload
    def reload_if_changed(self) -> bool:
        """Load the published version if it is not the one in use. True when a new version was loaded."""
        name = store.current_version(self.index_dir)
        if name is None:
            if self._snapshot is None:
                self._error = f"no index published in {self.index_dir}; run `replydesk kb build`"
            return False
        if (self._snapshot is not None and self._snapshot.build_id == name) or name == self._failed_version:
            return False
        with self._load_lock:
            if self._snapshot is not None and self._snapshot.build_id == name:
                return False
            try:
                snapshot = store.load_version(
                    self.index_dir / "versions" / name,
                    model_id=self.embedder.model_id,
                    dimension=self.embedder.dimension,
                )
            except store.IndexCorrupt as exc:
                self._failed_version = name
                self._error = f"index version {name} is unusable: {exc}"
                log.error("kb index not loaded", extra={"version": name, "error": str(exc)})
                return False
            self._snapshot = snapshot
            self._error = None
            self._failed_version = None
            log.info("kb index loaded", extra={"version": name, "chunks": len(snapshot.corpus.chunks)})
            return True

    def _current(self) -> store.Snapshot:
        now = time.monotonic()
        if self._snapshot is None or now - self._last_check >= self.settings.kb_reload_interval_s:
            self._last_check = now
            self.reload_if_changed()
        snapshot = self._snapshot
        if snapshot is None:
            raise IndexUnavailable(
                f"the knowledge base index is not available: {self._error}",
                details={"index_dir": str(self.index_dir)},
            )
        return snapshot

    def status(self) -> dict:
        snapshot = self._snapshot
        if snapshot is None:
            state = describe_index(self.index_dir)
            if self._error and state["status"] == "ok":
                state = {"status": "degraded", "detail": {**state["detail"], "reason": self._error}}
            return state
        detail = _manifest_detail(snapshot.manifest)
        if self._error:
            detail["reason"] = self._error
        return {"status": "degraded" if self._error else "ok", "detail": detail}

    def warm_up(self) -> None:
        """Load the published index now (if any), so the first search does not pay for it."""
        self._last_check = time.monotonic()
        self.reload_if_changed()

    def close(self) -> None:
        self._snapshot = None

    # ------------------------------------------------------------------ reading
    def search_page(
        self,
        query: str,
        *,
        locale: str | None = None,
        k: int = 3,
        intent: str | None = None,
        tags: Sequence[str] | None = None,
        query_vector: np.ndarray | None = None,
    ) -> KBSearchRead:
        query = " ".join((query or "").split())
        if not query:
            raise InvalidInput("the search query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(
                f"the search query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}"
            )
        if k < 1:
            raise InvalidInput("k must be at least 1")
        snapshot = self._current()
        vector = query_vector if query_vector is not None else self.query_vector(query, locale)
        result = retrieval.search(
            snapshot.corpus,
            query,
            vector,
            locale=locale,
            default_locale=self.settings.default_locale,
            k=k,
            intent=intent,
            tags=[t for t in (tags or []) if t],
            weights=self.weights,
        )
        return KBSearchRead(
            query=query,
            locale=locale,
            language=result.language,
            fallback=result.fallback,
            hits=[hit_model(h) for h in result.hits],
        )

    def search(
        self,
        query: str,
        *,
        locale: str | None = None,
        k: int = 3,
        intent: str | None = None,
        tags: Sequence[str] | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[ArticleHit]:
        """Top-k articles for `query` (hybrid dense + BM25), filtered by locale (with fallback), intent and
        tags."""
        return self.search_page(
            query, locale=locale, k=k, intent=intent, tags=tags, query_vector=query_vector
        ).hits

    def suggest(
        self,
        text: str,
        *,
        locale: str | None,
        intent: str | None,
        k: int | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[ArticleHit]:
        """Articles for a triaged message: the intent's articles first; none of them -> any article.

        Out-of-scope messages get none (an unrelated article would only mislead a draft). Returns [] when the
        index is unavailable, so triage keeps working without a knowledge base.
        """
        k = k or self.settings.kb_top_k
        if intent == OUT_OF_SCOPE:
            return []
        text = text[:MAX_QUERY_CHARS]  # a long message still gets articles: its opening says what it is about
        try:
            hits = (
                self.search(text, locale=locale, k=k, intent=intent, query_vector=query_vector)
                if intent
                else []
            )
            return hits or self.search(text, locale=locale, k=k, query_vector=query_vector)
        except IndexUnavailable as exc:
            log.warning("no article suggestions: %s", exc.message)
            return []

    def get(self, article_id: str) -> ArticleRead:
        article = self._current().corpus.articles.get(article_id)
        if article is None:
            raise NotFound(f"no article with id `{article_id}`")
        return article_model(article)

    # ------------------------------------------------------------------ writing
    def build(
        self, *, skip_invalid: bool = False, force: bool = False, progress: store.Progress | None = None
    ) -> BuildRead:
        """Build and publish the index of the articles directory with this knowledge base's settings.

        What `replydesk kb build` runs. This process keeps searching the version it has loaded until its next
        reload check (`kb_reload_interval_s`), like any other process using the index; `reindex`, `upsert` and
        `delete` switch to the new version before they return. Raises `store.BuildRejected` when articles fail
        lint (unless `skip_invalid`).
        """
        return store.build_index(
            self.articles_dir,
            self.index_dir,
            self.embedder,
            self.build_options(skip_invalid=skip_invalid, force=force),
            progress=progress,
        )

    def _rebuild(self, *, skip_invalid: bool, force: bool = False) -> BuildRead:
        report = self.build(skip_invalid=skip_invalid, force=force)
        self._last_check = time.monotonic()
        self.reload_if_changed()
        return report

    def _file_of(self, article_id: str) -> Path | None:
        docs, _ = load_documents(self.articles_dir)
        for doc in docs:
            if Article.from_doc(doc).id == article_id:
                return Path(doc.source)
        return None

    def reindex(self, *, force: bool = False) -> BuildRead:
        """Rebuild from the articles directory; every article must pass lint (422 lists the problems)."""
        with self._write_lock:
            try:
                return self._rebuild(skip_invalid=False, force=force)
            except store.BuildRejected as exc:
                raise InvalidInput(
                    f"{exc}: " + "; ".join(str(i) for i in exc.issues[:5]),
                    details={"issues": [i.as_dict() for i in exc.issues]},
                ) from exc

    def upsert(
        self, article_id: str, *, markdown: str | None = None, data: ArticleUpsert | None = None
    ) -> tuple[ArticleRead, bool, BuildRead]:
        """Validate (same lint as `kb lint`), write the Markdown file, rebuild and switch to the new index."""
        if (markdown is None) == (data is None):
            raise InvalidInput("send the article either as Markdown or as JSON")
        with self._write_lock:
            existing = self._file_of(article_id)
            target = existing or self._new_path(article_id, data.locale if data else None, markdown)
            doc = self._incoming_doc(article_id, target, markdown=markdown, data=data)
            others, _ = load_documents(self.articles_dir)
            others = [d for d in others if Path(d.source).resolve() != target.resolve()]
            issues = errors_of(
                lint_documents(
                    others + [doc],
                    known_intents=self.known_intents,
                    help_base_url=self.settings.kb_help_base_url,
                    allowed_link_hosts=self.settings.kb_link_allowed_hosts,
                    only={doc.source},
                )
            )
            if issues:
                raise InvalidInput(
                    "the article fails lint: " + "; ".join(f"[{i.rule}] {i.message}" for i in issues),
                    details={"issues": [i.as_dict() for i in issues]},
                )
            article = Article.from_doc(doc)
            previous = target.read_text(encoding="utf-8") if target.exists() else None
            write_text_atomic(target, article.to_markdown())
            try:
                report = self._rebuild(skip_invalid=True)
            except BaseException:
                self._restore(target, previous)
                raise
            return (
                article_model(dataclasses.replace(article, source=str(target))),
                existing is None,
                report,
            )

    def delete(self, article_id: str) -> BuildRead:
        with self._write_lock:
            path = self._file_of(article_id)
            if path is None:
                raise NotFound(f"no article with id `{article_id}`")
            previous = path.read_text(encoding="utf-8")
            path.unlink()
            try:
                return self._rebuild(skip_invalid=True)
            except BaseException:
                self._restore(path, previous)
                raise

    @staticmethod
    def _restore(path: Path, previous: str | None) -> None:
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            write_text_atomic(path, previous)

    def _new_path(self, article_id: str, locale: str | None, markdown: str | None) -> Path:
        """New articles go to `<articles>/<language>/<id>.md` when that folder exists, else
        `<articles>/<id>.md`."""
        if locale is None and markdown is not None:
            try:
                locale = str(parse_markdown(markdown).meta.get("locale") or "")
            except ArticleParseError:
                locale = ""
        folder = self.articles_dir / language_of(locale) if locale else self.articles_dir
        if not folder.is_dir():
            folder = self.articles_dir
        return folder / f"{article_id}.md"

    @staticmethod
    def _incoming_doc(article_id: str, target: Path, *, markdown: str | None, data: ArticleUpsert | None):
        if data is not None:
            if data.id not in (None, article_id):
                raise InvalidInput(f"the body id `{data.id}` differs from the path id `{article_id}`")
            fields = data.model_dump(exclude={"id", "body"})
            values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
            article = Article(id=article_id, body=data.body, source=str(target), **values)
            markdown = article.to_markdown()
        assert markdown is not None
        try:
            doc = parse_markdown(markdown, source=str(target))
        except ArticleParseError as exc:
            raise InvalidInput(f"the article is not readable: {exc}", details={"rule": "unreadable"}) from exc
        meta_id = doc.meta.get("id")
        if doc.has_front_matter and meta_id in (None, ""):
            doc = dataclasses.replace(doc, meta={**doc.meta, "id": article_id})
        elif meta_id is not None and str(meta_id) != article_id:
            raise InvalidInput(f"the front matter id `{meta_id}` differs from the path id `{article_id}`")
        return doc
