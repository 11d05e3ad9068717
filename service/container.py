"""Process-wide components, built once and shared by the routers and the CLI; the container starts, closes and
reports on them.

Each capability exposes one component here; routers reach them through their capability's
`Annotated[..., Depends()]` aliases (`service/<capability>/deps.py`), so tests can swap any of them with
`app.dependency_overrides`. Components load lazily on first use: `start()` loads what the first request would
otherwise wait for and starts the background worker, `close()` undoes it, and `health()` reports every
component without forcing any of them to load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from service.logging import install_log_redaction
from service.redaction import redact_values
from service.settings import Settings

if TYPE_CHECKING:
    from service.auth.keys import KeyStore
    from service.auth.ratelimit import RateLimiter
    from service.clock import Clock
    from service.db import Database
    from service.db.llm_calls import LLMCallSink
    from service.drafting.drafter import Drafter
    from service.drafting.offload import LLMWorkPool
    from service.embeddings import Embedder
    from service.integrations.context import ContextProviders
    from service.kb.service import KnowledgeBase
    from service.pipeline.models import TriagePipelineRead
    from service.pipeline.service import MessagePipeline
    from service.tone.checker import ToneChecker
    from service.tone.models import ToneCheckRead
    from service.triage.models import TriageRequest
    from service.triage.service import TriageService
    from service.workflow.heartbeat import Heartbeat
    from service.workflow.service import Workflow
    from service.workflow.worker import WorkflowWorker

ComponentHealth = dict[str, Any]

log = logging.getLogger("replydesk.config")


class Container:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._worker: WorkflowWorker | None = None
        self._heartbeat: Heartbeat | None = None

    def loaded(self, name: str) -> Any | None:
        """The component `name` if something has used it already, else None (never loads it)."""
        return self.__dict__.get(name)

    # -- lifecycle
    # ---------------------------------------------------------------------------------------------

    def start(self, *, warm: bool = True, workers: bool | None = None, kind: str = "serve") -> None:
        """Start-up of `replydesk serve` and `replydesk worker`: load the models and the index (`warm`),
        migrate the database, store every LLM call in the `llm_calls` table, and run the background loops
        (webhooks, SLA events, receipts, pipelines) with their heartbeat when `workers` (default: the
        `workers_enabled` setting; `replydesk worker` forces it on). A missing index only degrades search. Log
        records are credential-redacted from here on, and each of `warnings()` is logged once."""
        install_log_redaction()
        for warning in self.warnings():
            log.warning(warning["message"], extra={"warning": warning["code"]})
        if warm:
            _ = self.triage, self.tone, self.drafter
            self.kb.warm_up()
        _ = self.db  # migrates
        # configuration errors stop start-up, not each request: an unreachable shared rate-limit storage, an
        # unknown type in REPLYDESK_WEBHOOK_EVENTS
        _ = self.workflow
        if kind == "serve":
            _ = self.rate_limiter
        if self.settings.llm_base_url:
            llm = self.drafter.llm
            if llm is not None and self.llm_call_sink not in llm.sinks:
                llm.add_sink(self.llm_call_sink)
        run_workers = self.settings.workers_enabled if workers is None else workers
        if run_workers and self._worker is None:
            from service.workflow.heartbeat import Heartbeat
            from service.workflow.worker import WorkflowWorker

            self._worker = WorkflowWorker(self.workflow, self.settings.worker_interval_s)
            self._worker.start()
            self._heartbeat = Heartbeat(
                self.db,
                self.clock,
                kind=kind,
                interval_s=self.settings.worker_interval_s,
                stale_s=self.settings.worker_stale_s,
            )
            self._heartbeat.start()

    @property
    def worker_id(self) -> str | None:
        """This process's id in `worker_heartbeats` while it runs the background loops, else None."""
        return self._heartbeat.worker_id if self._heartbeat is not None else None

    def close(self) -> None:
        """Stop the worker and its heartbeat, then release what the loaded components hold (HTTP clients,
        index snapshots)."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        workflow = self.loaded("workflow")
        if workflow is not None:
            workflow.dispatcher.close()
        kb, drafter = self.loaded("kb"), self.loaded("drafter")
        if kb is not None:
            kb.close()
        if drafter is not None:
            drafter.close()
        keys = self.loaded("keys")
        if keys is not None:
            keys.close()  # writes the pending last-used times

    # -- health
    # ------------------------------------------------------------------------------------------------

    def health(self) -> dict[str, ComponentHealth]:
        """State of each component (`ok | degraded | unavailable | not_loaded`), without loading any of
        them; every string credential-redacted (the route needs no key)."""
        components: dict[str, ComponentHealth] = redact_values(
            {
                "model": self._model_health(),
                "index": self._index_health(),
                "database": self._database_health(),
                "llm": self._llm_health(),
                "tone": self._tone_health(),
                "workers": self._workers_health(),
                "rate_limit": self._rate_limit_health(),
            }
        )
        return components

    def _rate_limit_health(self) -> ComponentHealth:
        limiter = self.loaded("rate_limiter")
        return limiter.health() if limiter is not None else {"status": "not_loaded", "detail": {}}

    def warnings(self) -> list[dict[str, str]]:
        """Settings that work but leave a webhook unauthenticated, or a channel listed for sending without its
        credentials: logged at start, listed by /health."""
        s, found = self.settings, []
        if s.webhook_url and not s.webhook_secret:
            found.append(
                {
                    "code": "outbound_webhooks_unsigned",
                    "message": "REPLYDESK_WEBHOOK_URL is set but REPLYDESK_WEBHOOK_SECRET is not: outbound "
                    "webhooks go unsigned, so the receiver cannot tell them from forged or replayed requests",
                }
            )
        if (s.chatwoot_base_url or s.chatwoot_api_token) and not s.chatwoot_webhook_secret:
            found.append(
                {
                    "code": "chatwoot_webhooks_unverified",
                    "message": "the Chatwoot adapter is configured (REPLYDESK_CHATWOOT_BASE_URL / "
                    "REPLYDESK_CHATWOOT_API_TOKEN) but REPLYDESK_CHATWOOT_WEBHOOK_SECRET is not: Chatwoot "
                    "webhooks are accepted without a signature check (only the API key in the URL guards "
                    "them)",
                }
            )
        if s.channel_send:
            from service.integrations.senders import missing_credentials

            found.extend(missing_credentials(s))
        return found

    def _model_health(self) -> ComponentHealth:
        detail: dict[str, Any] = {"embedding_model": self.settings.embedding_model}
        triage = self.loaded("triage")
        if triage is not None:
            detail.update(triage.describe())
        return {"status": "ok" if self.loaded("embedder") is not None else "not_loaded", "detail": detail}

    def _index_health(self) -> ComponentHealth:
        """The loaded snapshot if the KB is in use, else the manifest on disk."""
        kb = self.loaded("kb")
        if kb is not None:
            return kb.status()
        from service.kb.service import describe_index

        return describe_index(self.settings.resolved_index_dir)

    def _database_health(self) -> ComponentHealth:
        db = self.loaded("db")
        return db.health() if db is not None else {"status": "not_loaded", "detail": {}}

    def _llm_health(self) -> ComponentHealth:
        """Whether drafts can come from an LLM, without calling it."""
        drafter = self.loaded("drafter")
        if drafter is not None:
            return drafter.health()
        configured = bool(self.settings.llm_base_url)
        return {
            "status": "not_loaded",
            "detail": {"configured": configured, "model": self.settings.llm_model if configured else None},
        }

    def _workers_health(self) -> ComponentHealth:
        """Whether any process (this one or another replica) runs the background loops: ok while one has
        reported within `worker_stale_s` (service/workflow/heartbeat.py)."""
        db = self.loaded("db")
        if db is None:
            return {"status": "not_loaded", "detail": {}}
        from service.workflow.heartbeat import workers_health

        return workers_health(db, self.clock.now(), self.settings.worker_stale_s)

    def _tone_health(self) -> ComponentHealth:
        """Rule count and rules file once the checker is loaded (it loads lazily)."""
        tone = self.loaded("tone")
        return (
            {"status": "ok", "detail": tone.describe()}
            if tone is not None
            else {"status": "not_loaded", "detail": {}}
        )

    # -- analysis: triage, knowledge base, drafts, tone
    # --------------------------------------------------------

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

    @cached_property
    def triage(self) -> TriageService:
        from service.triage.service import TriageService

        return TriageService.from_settings(self.settings, self.embedder)

    @cached_property
    def tone(self) -> ToneChecker:
        from service.tone.checker import ToneChecker

        return ToneChecker.from_settings(self.settings)

    @cached_property
    def kb(self) -> KnowledgeBase:
        """Help articles: hybrid search over the published index, hot-reloaded; edits rebuild
        incrementally."""
        from service.kb.service import KnowledgeBase

        return KnowledgeBase(self.settings, lambda: self.embedder)

    @cached_property
    def drafter(self) -> Drafter:
        """Reply drafts: the LLM seam (one OpenAI-compatible client per process) with template fallback."""
        from service.drafting.drafter import Drafter

        return Drafter.from_settings(self.settings, tone=self.tone, taxonomy=self.triage.classifier.taxonomy)

    @cached_property
    def pipeline(self) -> MessagePipeline:
        """Triage + articles + drafts for one message (POST /v1/triage, `replydesk triage`, ingest)."""
        from service.pipeline.service import MessagePipeline

        return MessagePipeline(self.triage, self.kb, self.drafter)

    @cached_property
    def llm_work(self) -> LLMWorkPool:
        """Threads of their own for LLM-bound requests, so a slow LLM never holds the shared request pool."""
        from service.drafting.offload import LLMWorkPool

        return LLMWorkPool.from_settings(self.settings)

    # -- workflow: storage, keys, conversations (service/db, service/auth, service/workflow)
    # --------------------

    @cached_property
    def clock(self) -> Clock:
        from service.clock import SystemClock

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
        """Per-key limits counted in `rate_limit_storage` (shared by the replicas on Redis); raises when that
        storage does not answer, so `start()` building it stops a replica with a wrong URL. Its fallback
        counter is on the workflow's registry (GET /metrics)."""
        from service.auth.ratelimit import RateLimiter

        return RateLimiter(
            self.settings.rate_limit,
            self.settings.rate_limit_storage,
            registry=self.workflow.metrics.registry,
        )

    @cached_property
    def llm_call_sink(self) -> LLMCallSink:
        """Stores `LLMCallLog` records in the `llm_calls` table (registered with the drafter's LLM by
        `start`)."""
        from service.db.llm_calls import LLMCallSink

        return LLMCallSink(self.db, self.clock)

    @cached_property
    def context_providers(self) -> ContextProviders:
        from service.integrations.context import ContextProviders

        return ContextProviders.from_settings(self.settings)

    @cached_property
    def workflow(self) -> Workflow:
        """Conversations, suggestions and decisions, outbound webhooks, SLA, surveys."""
        from service.drafting.offload import io_bound
        from service.workflow.service import Workflow

        def tone_check(text: str, locale: str | None, context: dict[str, Any]) -> ToneCheckRead:
            from service.tone.models import ToneContext

            return self.tone.check(text, locale, ToneContext.model_validate(context))

        workflow = Workflow(
            self.db,
            self.clock,
            self.settings,
            pipeline=PipelineOnFirstUse(lambda: self.pipeline),
            tone_check=tone_check,
            # the providers' HTTP waits lend the pipeline thread's CPU slot, as LLM waits do
            facts=io_bound(self.context_providers.lookup) if self.context_providers.providers else None,
        )
        s = self.settings
        if s.chatwoot_base_url and s.chatwoot_api_token:
            # replies in Chatwoot conversations are posted there as outgoing messages, and their suggestions
            # as a private note
            from service.integrations.adapters.chatwoot import ChatwootNoteTransport, ChatwootReplies

            replies = ChatwootReplies(
                s.chatwoot_base_url, s.chatwoot_api_token, timeout_s=s.webhook_timeout_s
            )
            workflow.dispatcher.transports[replies.prefix] = replies
            notes = ChatwootNoteTransport(
                s.chatwoot_base_url, s.chatwoot_api_token, timeout_s=s.webhook_timeout_s
            )
            workflow.dispatcher.transports[notes.prefix] = notes
        if s.channel_send:
            # replies in WhatsApp / Messenger / Instagram / Twilio conversations go out through the channel's
            # own API (`wa:`, `fb:`, `ig:`, `twilio:`; `wa-read:` marks WhatsApp messages read) for each
            # channel listed whose credentials are set; `warnings()` names the others
            from service.integrations.senders import channel_senders

            for sender in channel_senders(s):
                workflow.dispatcher.transports[sender.prefix] = sender
        return workflow


class PipelineOnFirstUse:
    """The workflow's pipeline, built on the first message it runs: a queue or KPI request never loads
    models."""

    def __init__(self, build: Callable[[], MessagePipeline]) -> None:
        self._build = build

    def run(self, request: TriageRequest, *, facts: Sequence[Any] = ()) -> TriagePipelineRead:
        return self._build().run(request, facts=facts)
