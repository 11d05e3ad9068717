"""The agent workflow: ingest → suggestions → decisions → outbound → receipts, with SLA cycles, surveys and
events.

`Workflow` is the facade the routers, the worker and the tests call; each use case lives in its own module
(`ingest`, `suggestions`, `outbound`, `queue`, `conversations`, `survey_flow`) as functions of the shared
`WorkflowContext`. Every state change is a conditional UPDATE (`... WHERE status = <expected>`), so two agents
or two retries racing on the same suggestion or message cannot both win, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from functools import partial

from service.auth.models import Principal
from service.clock import Clock
from service.db import Database
from service.settings import Settings
from service.workflow import (
    assignment,
    channel_events,
    conversations,
    ingest,
    outbound,
    queue,
    recovery,
    sla,
    suggestions,
    survey_flow,
)
from service.workflow.context import WorkflowContext
from service.workflow.events import EventLog
from service.workflow.metrics import WorkflowMetrics
from service.workflow.models import (
    AnalysisRead,
    ApproveRequest,
    AssignUpdate,
    ConversationDetail,
    ConversationRead,
    DecisionRead,
    Direction,
    ExternalReplyCreate,
    IngestRead,
    MessageCreate,
    MessageRead,
    MessageStatus,
    PresenceRead,
    QueuedRead,
    QueueFilter,
    QueueRead,
    ReceiptStatus,
    RejectRequest,
    ReplyRequest,
    ResolveRead,
    ResolveRequest,
    SlaState,
    StatusRead,
    StatusReceipt,
    SuggestionRead,
    SuggestionStatus,
    SurveyRead,
    ToneReport,
)
from service.workflow.ports import FactsLookup, MessagePipelinePort, ToneCheck
from service.workflow.sla import SlaPolicy
from service.workflow.suggestions import ToneBlocked
from service.workflow.webhooks import WebhookDispatcher

__all__ = ["ToneBlocked", "Workflow"]


class Workflow:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        *,
        pipeline: MessagePipelinePort,
        tone_check: ToneCheck | None = None,
        facts: FactsLookup | None = None,
        metrics: WorkflowMetrics | None = None,
        dispatcher: WebhookDispatcher | None = None,
    ) -> None:
        metrics = metrics or WorkflowMetrics()
        events = EventLog(db, settings.webhook_url, settings.webhook_events)
        events.on_emit.append(lambda t: metrics.events.labels(t).inc())
        dispatcher = dispatcher or WebhookDispatcher(
            db,
            clock,
            secret=settings.webhook_secret,
            max_attempts=settings.webhook_max_attempts,
            backoff_s=settings.webhook_backoff_s,
            backoff_max_s=settings.webhook_backoff_max_s,
            timeout_s=settings.webhook_timeout_s,
            concurrency=settings.delivery_concurrency,
            per_receiver=settings.delivery_per_receiver,
            wake=events.new_work,
        )
        self.ctx = ctx = WorkflowContext(
            db=db,
            clock=clock,
            settings=settings,
            pipeline=pipeline,
            events=events,
            metrics=metrics,
            sla=SlaPolicy.from_settings(settings),
            dispatcher=dispatcher,
            tone_check=tone_check,
            facts=facts,
        )
        dispatcher.on_delivered["message.outbound"] = partial(outbound.outbound_delivered, ctx)
        dispatcher.on_failed["message.outbound"] = partial(outbound.outbound_failed, ctx)
        metrics.watch(self.snapshot)

    # -- what the routers and the worker read ----------------------------------------------------------------

    @property
    def db(self) -> Database:
        return self.ctx.db

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def pipeline(self) -> MessagePipelinePort:
        return self.ctx.pipeline

    @property
    def events(self) -> EventLog:
        return self.ctx.events

    @property
    def metrics(self) -> WorkflowMetrics:
        return self.ctx.metrics

    @property
    def sla(self) -> SlaPolicy:
        return self.ctx.sla

    @property
    def dispatcher(self) -> WebhookDispatcher:
        return self.ctx.dispatcher

    # -- ingest ----------------------------------------------------------------------------------------------

    def ingest(
        self,
        req: MessageCreate,
        principal: Principal | None = None,
        pipeline: MessagePipelinePort | None = None,
    ) -> IngestRead:
        return ingest.ingest(self.ctx, req, pipeline)

    def enqueue(self, req: MessageCreate) -> QueuedRead:
        """Store an inbound message and leave its pipeline to the workers (channel webhooks ack first)."""
        return ingest.enqueue(self.ctx, req)

    def enqueue_many(self, reqs: list[MessageCreate]) -> list[QueuedRead]:
        """`enqueue` for a webhook's batch, in one transaction."""
        return ingest.enqueue_many(self.ctx, reqs)

    @property
    def pipeline_work(self) -> threading.Event:
        """Set when a message is queued for its pipeline: wakes this process's pipeline workers."""
        return self.ctx.pipeline_work

    def ingest_result(self, message_id: int, *, duplicate: bool) -> IngestRead:
        return ingest.ingest_result(self.ctx, message_id, duplicate=duplicate)

    def recover_pipelines(
        self,
        pipeline: MessagePipelinePort | None = None,
        *,
        limit: int = 100,
        should_stop: Callable[[], bool] | None = None,
    ) -> recovery.RecoveryCounts:
        """Re-run pipelines stranded by a crash (pending past their lease); the worker calls this."""
        return recovery.recover_pipelines(
            self.ctx, pipeline or self.ctx.pipeline, limit=limit, should_stop=should_stop
        )

    # -- surveys ---------------------------------------------------------------------------------------------

    def answer_survey(self, survey_id: int, text: str) -> SurveyRead:
        """An answer collected outside a message (a button, a form)."""
        return survey_flow.answer_survey(self.ctx, survey_id, text)

    # -- suggestions and decisions ---------------------------------------------------------------------------

    def list_suggestions(
        self, status: SuggestionStatus | None, conversation_id: int | None, limit: int
    ) -> list[SuggestionRead]:
        return suggestions.list_suggestions(self.ctx, status, conversation_id, limit)

    def get_suggestion(self, suggestion_id: int) -> SuggestionRead:
        return suggestions.get_suggestion(self.ctx, suggestion_id)

    def approve(self, suggestion_id: int, req: ApproveRequest, principal: Principal) -> DecisionRead:
        return suggestions.approve(self.ctx, suggestion_id, req, principal)

    def send(self, suggestion_id: int, principal: Principal) -> DecisionRead:
        """Queue the approved/edited text as an outbound message. Sending again returns the same message."""
        return suggestions.send(self.ctx, suggestion_id, principal)

    def reject(self, suggestion_id: int, req: RejectRequest, principal: Principal) -> DecisionRead:
        return suggestions.reject(self.ctx, suggestion_id, req, principal)

    def preview_tone(self, conversation_id: int, text: str) -> ToneReport:
        return suggestions.preview_tone(self.ctx, conversation_id, text)

    def reply(self, conversation_id: int, req: ReplyRequest, principal: Principal) -> DecisionRead:
        return suggestions.reply(self.ctx, conversation_id, req, principal)

    # -- outbound status -------------------------------------------------------------------------------------

    def apply_receipt(self, message_id: int, receipt: StatusReceipt) -> StatusRead:
        """Apply a channel receipt; statuses only move forward."""
        return outbound.apply_receipt(self.ctx, message_id, receipt)

    def mark_read(self, message_id: int, principal: Principal) -> MessageRead:
        """An agent opened the conversation up to this inbound message: it (and earlier ones) are read."""
        return outbound.mark_read(self.ctx, message_id, principal)

    # -- what channels report besides customer messages ----------------------------------------------------

    def record_external_reply(self, req: ExternalReplyCreate) -> str:
        """A reply a person sent outside ReplyDesk: answers the wait like one sent from here."""
        return channel_events.record_external_reply(self.ctx, req)

    def apply_channel_receipt(self, channel: str, receipt: StatusReceipt) -> str:
        """A status named by the channel's message id: `applied`, `refused` or `pending` (kept for later)."""
        return channel_events.apply_channel_receipt(self.ctx, channel, receipt)

    def apply_watermark(
        self, channel: str, conversation_external_id: str, at: datetime, status: ReceiptStatus
    ) -> int:
        return channel_events.apply_watermark(self.ctx, channel, conversation_external_id, at, status)

    def apply_pending_receipts(self) -> channel_events.PendingCounts:
        return channel_events.apply_pending_receipts(self.ctx)

    def external_status(
        self,
        channel: str | None,
        conversation_external_id: str,
        status: str,
        principal: Principal,
        by: str | None = None,
    ) -> str:
        return channel_events.external_status(
            self.ctx, channel, conversation_external_id, status, principal, by
        )

    def channel_event_skipped(self, type_: str, reason: str) -> None:
        channel_events.skipped(self.ctx, type_, reason)

    def outbound_by_channel_id(self, channel: str, channel_message_id: str) -> int | None:
        return outbound.outbound_by_channel_id(self.ctx, channel, channel_message_id)

    def outbound_sent_before(self, channel: str, conversation_external_id: str, at: datetime) -> list[int]:
        """Outbound messages of a thread, sent by `at` and not yet read (for read watermarks)."""
        return outbound.outbound_sent_before(self.ctx, channel, conversation_external_id, at)

    def list_messages(
        self,
        *,
        status: MessageStatus | None,
        direction: Direction | None,
        conversation_id: int | None,
        limit: int,
    ) -> list[MessageRead]:
        return outbound.list_messages(
            self.ctx, status=status, direction=direction, conversation_id=conversation_id, limit=limit
        )

    def get_message(self, message_id: int) -> MessageRead:
        return outbound.get_message(self.ctx, message_id)

    # -- conversations, queue, SLA events --------------------------------------------------------------------

    def conversation(self, conversation_id: int) -> ConversationDetail:
        return conversations.conversation(self.ctx, conversation_id)

    def latest_analysis(self, conversation_id: int) -> AnalysisRead | None:
        return conversations.latest_analysis(self.ctx, conversation_id)

    def conversation_id_by_external(self, external_id: str) -> int | None:
        return conversations.conversation_id_by_external(self.ctx, external_id)

    def resolve(self, conversation_id: int, req: ResolveRequest, principal: Principal) -> ResolveRead:
        return conversations.resolve(self.ctx, conversation_id, req, principal)

    def queue(
        self, *, state: SlaState | None = None, limit: int = 100, filters: QueueFilter | None = None
    ) -> QueueRead:
        """Read-only: SLA states are computed from the stored due times (the worker announces them)."""
        return queue.queue(self.ctx, state=state, limit=limit, filters=filters)

    def queue_order(self, limit: int = 100) -> list[int]:
        """Open conversation ids in queue order (cheap: for next / previous)."""
        return queue.queue_order(self.ctx, limit)

    def queue_facets(self) -> dict[str, list[str]]:
        return queue.facets(self.ctx)

    # -- assignment and presence -----------------------------------------------------------------------------

    def assign(self, conversation_id: int, req: AssignUpdate, principal: Principal) -> ConversationRead:
        return assignment.assign(self.ctx, conversation_id, req, principal)

    def touch_presence(self, conversation_id: int, principal: Principal) -> PresenceRead:
        return assignment.touch_presence(self.ctx, conversation_id, principal)

    def leave(self, conversation_id: int, principal: Principal) -> None:
        assignment.leave(self.ctx, conversation_id, principal)

    def presence(self, conversation_id: int) -> PresenceRead:
        return assignment.presence(self.ctx, conversation_id)

    def assignable_agents(self) -> list[tuple[str, str]]:
        return assignment.assignable_agents(self.ctx)

    def scan_sla(self) -> int:
        """Emit `sla.at_risk` and `sla.breached` once per wait (the worker's job; never done by a read).
        Returns how many events were emitted."""
        return sla.scan_sla(self.ctx)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Counts for the Prometheus gauges (queue per SLA state, outbox per status)."""
        return queue.snapshot(self.ctx)
