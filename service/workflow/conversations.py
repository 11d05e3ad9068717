"""Conversations: the full thread (messages, suggestions, surveys) and resolving it, which closes the wait,
supersedes pending suggestions and may queue a satisfaction survey."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session, defer

from service.auth.models import Principal
from service.db.models import Conversation, Message, Suggestion, Survey
from service.db.rows import changed
from service.errors import Conflict
from service.pipeline.models import TriagePipelineRead
from service.workflow.context import WorkflowContext
from service.workflow.mapping import (
    conversation_or_404,
    conversation_read,
    message_read,
    suggestion_read,
    survey_read,
)
from service.workflow.models import (
    AnalysisRead,
    ContextFact,
    ConversationDetail,
    ConversationStatus,
    Direction,
    ResolveRead,
    ResolveRequest,
)
from service.workflow.queue import close_cycle
from service.workflow.suggestions import supersede
from service.workflow.survey_flow import queue_survey, survey_kind


def conversation(ctx: WorkflowContext, conversation_id: int) -> ConversationDetail:
    now = ctx.clock.now()
    with ctx.db.session() as s:
        conv = conversation_or_404(s, conversation_id)
        base = conversation_read(s, ctx.sla, conv, now)
        msgs = s.scalars(
            select(Message)
            .options(defer(Message.triage), defer(Message.facts))  # not part of the thread's reads
            .where(Message.conversation_id == conv.id)
            .order_by(Message.id)
        )
        sugs = s.scalars(
            select(Suggestion).where(Suggestion.conversation_id == conv.id).order_by(Suggestion.id)
        )
        surveys = s.scalars(select(Survey).where(Survey.conversation_id == conv.id).order_by(Survey.id))
        return ConversationDetail(
            **base.model_dump(),
            messages=[message_read(m) for m in msgs],
            suggestions=[suggestion_read(x) for x in sugs],
            surveys=[survey_read(x) for x in surveys],
        )


def latest_analysis(ctx: WorkflowContext, conversation_id: int) -> AnalysisRead | None:
    """What the pipeline found for the newest customer message it finished: triage, articles, handoff."""
    with ctx.db.session() as s:
        conversation_or_404(s, conversation_id)
        return _latest_analysis(s, conversation_id)


def _latest_analysis(s: Session, conversation_id: int) -> AnalysisRead | None:
    msg = s.scalars(
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.inbound.value,
            Message.triage.is_not(None),
        )
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    if msg is None or msg.triage is None:
        return None
    return AnalysisRead(
        message_id=msg.id,
        result=TriagePipelineRead.model_validate(msg.triage),
        facts=[ContextFact.model_validate(f) for f in msg.facts or []],
    )


def conversation_id_by_external(ctx: WorkflowContext, external_id: str) -> int | None:
    """Our conversation for a helpdesk's thread id (any channel), newest first if several."""
    with ctx.db.session() as s:
        return s.scalar(
            select(Conversation.id)
            .where(Conversation.external_id == external_id)
            .order_by(Conversation.id.desc())
            .limit(1)
        )


def resolve(
    ctx: WorkflowContext, conversation_id: int, req: ResolveRequest, principal: Principal
) -> ResolveRead:
    now = ctx.clock.now()
    with ctx.db.session() as s:
        conv = conversation_or_404(s, conversation_id)
        won = changed(
            s,
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.status == ConversationStatus.open.value)
            .values(
                status=ConversationStatus.resolved.value,
                resolved_at=now,
                resolved_by=principal.name,
                updated_at=now,
            ),
        )
        if won != 1:
            raise Conflict(f"conversation {conversation_id} is already resolved")
        s.refresh(conv)
        close_cycle(s, conv, now, "resolve")
        supersede(s, conv.id, up_to_message_id=None, keep=None)
        ctx.events.emit(
            s,
            "conversation.resolved",
            {"conversation_id": conv.id, "by": principal.name, "note": req.note},
            now=now,
            conversation_id=conv.id,
        )
        ctx.metrics.resolved.inc()
        kind = survey_kind(ctx, conv.channel, req.survey)
        survey = out = None
        if kind is not None:
            survey, out = queue_survey(ctx, s, conv, kind, now, principal)
        s.flush()
        return ResolveRead(
            conversation=conversation_read(s, ctx.sla, conv, now),
            survey=survey_read(survey) if survey else None,
            survey_message=message_read(out) if out else None,
        )
