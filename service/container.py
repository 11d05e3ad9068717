"""Process-wide components, built once and shared by the routers and the CLI.

Each capability exposes one component here; routers reach them through the `Annotated[..., Depends()]` aliases in
`service/deps.py`, so tests can swap any of them with `app.dependency_overrides`.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

from service.settings import Settings

if TYPE_CHECKING:
    from service.auth.keys import KeyStore
    from service.auth.ratelimit import RateLimiter
    from service.db import Database
    from service.db.llm_calls import LLMCallSink
    from service.drafting.drafter import Drafter
    from service.embeddings import Embedder
    from service.integrations.context import ContextProviders
    from service.kb.service import KnowledgeBase
    from service.tone.checker import ToneChecker
    from service.workflow.clock import Clock
    from service.workflow.service import Workflow


class Container:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()

    @cached_property
    def embedder(self) -> Embedder:
        from service.embeddings import get_embedder

        return get_embedder(
            self.settings.embedding_model,
            self.settings.resolved_cache_dir / "embeddings",
            backend=self.settings.embedding_backend,
            threads=self.settings.embedding_threads,
            batch_threads=self.settings.resolved_embedding_batch_threads,
        )

    def warm_up(self) -> None:
        """Load what the first request would otherwise wait for (a missing index only degrades search)."""
        _ = self.triage, self.tone, self.drafter, self.db
        self.kb.warm_up()

    def close(self) -> None:
        for name in ("kb", "drafter"):
            comp = self.__dict__.get(name)
            if comp is not None and hasattr(comp, "close"):
                comp.close()

    @cached_property
    def tone(self) -> ToneChecker:
        from service.tone.checker import ToneChecker

        return ToneChecker.from_settings(self.settings)

    @cached_property
    def kb(self) -> KnowledgeBase:
        """Help articles: hybrid search over the published index, hot-reloaded; edits rebuild incrementally."""
        from service.kb.service import KnowledgeBase

        return KnowledgeBase(self.settings, lambda: self.embedder)

    @cached_property
    def drafter(self) -> Drafter:
        """Reply drafts: the LLM seam (one OpenAI-compatible client per process) with template fallback."""
        from service.drafting.drafter import Drafter

        return Drafter.from_settings(self.settings, tone=self.tone, taxonomy=self.triage.classifier.taxonomy)

    # -- workflow: storage, keys, conversations (service/db, service/auth, service/workflow) --------------------

    @cached_property
    def clock(self) -> Clock:
        from service.workflow.clock import SystemClock

        return SystemClock()

    @cached_property
    def db(self) -> Database:
        """The database, migrated to the latest revision (`alembic upgrade head`) on first use."""
        from service.db import Database

        db = Database(self.settings.resolved_database_url)
        db.migrate()
        return db

    @cached_property
    def keys(self) -> KeyStore:
        from service.auth.keys import KeyStore

        return KeyStore(self.db, self.clock)

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        from service.auth.ratelimit import RateLimiter

        return RateLimiter(self.settings.rate_limit)

    @cached_property
    def llm_call_sink(self) -> LLMCallSink:
        """Stores `LLMCallLog` records in the `llm_calls` table (register with `LLMClient.add_sink`)."""
        from service.db.llm_calls import LLMCallSink

        return LLMCallSink(self.db, self.clock)

    @cached_property
    def context_providers(self) -> ContextProviders:
        from service.integrations.context import ContextProviders

        return ContextProviders.from_settings(self.settings)

    @cached_property
    def workflow(self) -> Workflow:
        """Conversations, suggestions and decisions, outbound webhooks, SLA, surveys."""
        from service.workflow.service import Workflow

        def tone_check(text: str, locale: str | None, context: dict):
            from service.tone.models import ToneContext

            return self.tone.check(text, locale, ToneContext.model_validate(context))

        return Workflow(
            self.db,
            self.clock,
            self.settings,
            pipeline=self.triage_pipeline,
            tone_check=tone_check,
            facts=self.context_providers.lookup if self.context_providers.providers else None,
        )

    @cached_property
    def triage(self):
        from service.triage.service import TriageService

        return TriageService.from_settings(self.settings, self.embedder)

    def triage_pipeline(self, request, facts=()):
        """Triage + articles + drafts for one message (POST /v1/triage, `replydesk triage`, ingest)."""
        from service.pipeline import run_pipeline

        return run_pipeline(self, request, facts=facts)

    def health(self) -> dict[str, dict]:
        """State of each component, without forcing any of them to load."""
        loaded = self.__dict__
        model = {
            "status": "ok" if "embedder" in loaded else "not_loaded",
            "detail": {"embedding_model": self.settings.embedding_model},
        }
        if "triage" in loaded:
            model["detail"].update(self.triage.describe())
        states = {"model": model}
        for name, fn in self.health_checks.items():
            states[name] = fn(self)
        return states

    # name -> callable(container) -> {"status": ..., "detail": {...}}; capabilities register theirs here.
    health_checks: dict = {}


def _index_health(container: Container) -> dict:
    from service.kb.service import index_health

    return index_health(container)


Container.health_checks["index"] = _index_health


def _database_health(container: Container) -> dict:
    if "db" not in container.__dict__:
        return {"status": "not_loaded", "detail": {}}
    return container.db.health()


Container.health_checks["database"] = _database_health
