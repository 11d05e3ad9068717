"""Ingest: an inbound message lands in its customer's thread once (idempotency key or channel id), opens or
continues the SLA wait, may answer a survey, and runs through the message pipeline; the result becomes the
message's triage and the pending suggestions.

A failed pipeline, or one that never finished (the process died between storing the message and storing
its suggestions), is re-run when the helpdesk re-sends the message, and by the worker (`recovery`). Every
run is claimed first: a conditional UPDATE moves the message's lease forward, so one stranded message is
re-run by one caller at a time, on any number of processes. Storing a result is claimed too (`pending` →
`done`), so even two runs that overlap (a slow first run and its re-run) never store suggestions twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.clock import ensure_utc
from service.db.models import Conversation, Customer, Message, SlaCycle, Suggestion, Survey
from service.db.rows import changed, get_row
from service.errors import ReplyDeskError
from service.pipeline.models import TriagePipelineRead
from service.triage.models import HistoryMessage, TriageRead, TriageRequest, UrgencyLevel
from service.workflow.context import MAX_RETRIES, WorkflowContext
from service.workflow.mapping import conversation_read, message_or_404, message_read, suggestion_read, ts
from service.workflow.models import (
    ContextFact,
    ConversationStatus,
    Direction,
    IngestRead,
    MessageCreate,
    MessageKind,
    MessageStatus,
    PipelineRead,
    PipelineStatus,
    QueuedRead,
    SlaKind,
    SuggestionStatus,
)
from service.workflow.outbound import note_transport
from service.workflow.ports import MessagePipelinePort
from service.workflow.queue import start_cycle
from service.workflow.sla import URGENCY_RANK
from service.workflow.survey_flow import open_survey, take_survey_answer

log = logging.getLogger("replydesk.workflow")


@dataclass
class Stored:
    message_id: int
    conversation_id: int
    duplicate: bool
    run_pipeline: bool


def ingest(
    ctx: WorkflowContext, req: MessageCreate, pipeline: MessagePipelinePort | None = None
) -> IngestRead:
    """Store the message and run its pipeline in this call (the API's `POST /v1/messages`)."""
    stored = store_inbound(ctx, req)
    count(ctx, req, stored)
    if stored.run_pipeline:
        run_pipeline(ctx, stored.message_id, pipeline or ctx.pipeline)
    return ingest_result(ctx, stored.message_id, duplicate=stored.duplicate)


def enqueue(ctx: WorkflowContext, req: MessageCreate) -> QueuedRead:
    """Store the message and leave its pipeline to the workers (channel webhooks: acknowledge first); triage
    and suggestions arrive as `suggestions.created` (events, webhook)."""
    stored = store_inbound(ctx, req, queued=True)
    count(ctx, req, stored)
    if stored.run_pipeline:
        ctx.pipeline_work.set()
    return QueuedRead(
        message_id=stored.message_id,
        conversation_id=stored.conversation_id,
        duplicate=stored.duplicate,
        queued=stored.run_pipeline,
    )


def enqueue_many(ctx: WorkflowContext, reqs: list[MessageCreate]) -> list[QueuedRead]:
    """`enqueue` for a webhook's whole batch in ONE transaction (one commit, one fsync, instead of one per
    message: a 100-message POST is acknowledged in a fraction of the time), then one wake-up for the workers.
    A duplicate inside the batch (a platform repeating an id) is found like any other, the earlier row being
    flushed. When a concurrent request stored one of the same customers, conversations or messages meanwhile
    (a unique key), the batch is stored again message by message."""
    if not reqs:
        return []
    try:
        with ctx.db.session() as s:
            stored = [store_in(ctx, s, req, queued=True) for req in reqs]
    except IntegrityError:
        stored = [store_inbound(ctx, req, queued=True) for req in reqs]
    for req, one in zip(reqs, stored, strict=True):
        count(ctx, req, one)
    if any(one.run_pipeline for one in stored):
        ctx.pipeline_work.set()
    return [
        QueuedRead(
            message_id=one.message_id,
            conversation_id=one.conversation_id,
            duplicate=one.duplicate,
            queued=one.run_pipeline,
        )
        for one in stored
    ]


def count(ctx: WorkflowContext, req: MessageCreate, stored: Stored) -> None:
    if stored.duplicate:
        ctx.metrics.duplicates.inc()
    else:
        ctx.metrics.messages.labels(req.channel.value).inc()


def ingest_result(ctx: WorkflowContext, message_id: int, *, duplicate: bool) -> IngestRead:
    now = ctx.clock.now()
    with ctx.db.session() as s:
        msg = message_or_404(s, message_id)
        conv = get_row(s, Conversation, msg.conversation_id)
        suggestions = list(
            s.scalars(select(Suggestion).where(Suggestion.message_id == msg.id).order_by(Suggestion.rank))
        )
        survey_id = s.scalars(select(Survey.id).where(Survey.reply_message_id == msg.id)).first()
        triage = TriageRead.model_validate(msg.triage) if msg.triage else None
        return IngestRead(
            duplicate=duplicate,
            conversation=conversation_read(s, ctx.sla, conv, now),
            message=message_read(msg),
            triage=triage,
            suggestions=[suggestion_read(x) for x in suggestions],
            facts=[ContextFact.model_validate(f) for f in msg.facts or []],
            pipeline=PipelineRead(
                status=PipelineStatus(msg.pipeline_status or "skipped"), error=msg.pipeline_error
            ),
            survey_id=survey_id,
        )


# -- storing the message -------------------------------------------------------------------------------------


def find_duplicate(s: Session, req: MessageCreate) -> Message | None:
    conds = []
    if req.idempotency_key:
        conds.append(Message.idempotency_key == req.idempotency_key)
    if req.channel_message_id:
        conds.append(
            (Message.channel == req.channel.value) & (Message.channel_message_id == req.channel_message_id)
        )
    if not conds:
        return None
    return s.scalars(select(Message).where(or_(*conds)).order_by(Message.id).limit(1)).first()


def store_inbound(ctx: WorkflowContext, req: MessageCreate, *, queued: bool = False) -> Stored:
    """Store an inbound message once. `queued`: its pipeline is left to the workers (the row is due at once)
    instead of being claimed for a run by this caller."""
    for attempt in range(MAX_RETRIES):
        try:
            with ctx.db.session() as s:
                return store_in(ctx, s, req, queued=queued)
        except IntegrityError:
            # A concurrent request created the same customer, conversation or message: look again.
            if attempt == MAX_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def store_in(ctx: WorkflowContext, s: Session, req: MessageCreate, *, queued: bool) -> Stored:
    """Store one inbound message in the caller's transaction (or find it stored already)."""
    dup = find_duplicate(s, req)
    if dup is not None:
        # A failed pipeline, or a stranded one (its run never finished: the process or the database died
        # mid-way), is re-run now. One still within its lease is probably running elsewhere: the answer says
        # `pending`, and the worker re-runs it if that run never ends.
        if queued:
            return Stored(dup.id, dup.conversation_id, True, run_pipeline=requeue(s, dup.id))
        rerun = claim_run(ctx, s, dup.id, ctx.clock.now(), retry_failed=True)
        return Stored(dup.id, dup.conversation_id, True, run_pipeline=rerun)
    return insert_inbound(ctx, s, req, queued=queued)


def is_reaction(req: MessageCreate) -> bool:
    """An emoji reaction to an earlier message: kept in the thread, but it asks nothing (no wait, no
    pipeline, no reopening)."""
    return not req.text and bool(req.attachments) and all(a.type == "reaction" for a in req.attachments)


def insert_inbound(ctx: WorkflowContext, s: Session, req: MessageCreate, *, queued: bool = False) -> Stored:
    now = ctx.clock.now()
    reaction = is_reaction(req)
    ch = req.channel.value
    customer = s.scalars(
        select(Customer).where(Customer.channel == ch, Customer.external_id == req.customer.id)
    ).one_or_none()
    if customer is None:
        customer = Customer(channel=ch, external_id=req.customer.id, created_at=now)
        s.add(customer)
    for field in ("name", "locale", "country"):
        value = getattr(req.customer, field)
        if value:
            setattr(customer, field, value)
    s.flush()
    conv = s.scalars(
        select(Conversation).where(
            Conversation.channel == ch, Conversation.external_id == req.conversation_external_id
        )
    ).one_or_none()
    if conv is None:
        conv = Conversation(
            channel=ch,
            external_id=req.conversation_external_id,
            customer_id=customer.id,
            status=ConversationStatus.open.value,
            urgency=UrgencyLevel.normal.value,
            created_at=now,
            updated_at=now,
            opened_at=now,
            extra={},
        )
        s.add(conv)
        s.flush()
    msg = Message(
        conversation_id=conv.id,
        channel=ch,
        direction=Direction.inbound.value,
        kind=(MessageKind.reaction if reaction else MessageKind.customer).value,
        channel_message_id=req.channel_message_id,
        idempotency_key=req.idempotency_key,
        reply_to=req.reply_to,
        text=req.text,
        attachments=[a.model_dump(exclude_none=True) for a in req.attachments],
        status=MessageStatus.received.value,
        created_at=now,
        customer_sent_at=ensure_utc(req.sent_at),
        pipeline_status=PipelineStatus.pending.value,
        # queued: due for the workers now (no run claimed yet); else the run this request starts after commit
        pipeline_lease_until=None if queued else now + timedelta(seconds=ctx.settings.pipeline_stale_s),
        pipeline_attempts=0 if queued else 1,
    )
    s.add(msg)
    s.flush()
    ctx.events.emit(
        s,
        "message.received",
        {"message": message_read(msg).model_dump(mode="json")},
        now=now,
        conversation_id=conv.id,
        message_id=msg.id,
    )

    if reaction:
        conv.updated_at = now
        msg.pipeline_status = PipelineStatus.skipped.value
        msg.pipeline_error = "a reaction: nothing to triage"
        msg.pipeline_lease_until = None
        return Stored(msg.id, conv.id, False, run_pipeline=False)

    survey = open_survey(s, conv.id, now)
    if survey is not None and take_survey_answer(ctx, s, survey, msg, now):
        return Stored(msg.id, conv.id, False, run_pipeline=False)

    if conv.status == ConversationStatus.resolved.value:
        conv.status = ConversationStatus.open.value
        conv.resolved_at = None
        conv.resolved_by = None
        conv.opened_at = now
        ctx.events.emit(
            s,
            "conversation.reopened",
            {"conversation_id": conv.id},
            now=now,
            conversation_id=conv.id,
            message_id=msg.id,
        )
    conv.updated_at = now
    conv.last_customer_message_at = now
    if conv.first_customer_message_at is None:
        conv.first_customer_message_at = now
    if conv.current_sla_id is None:
        kind = SlaKind.first_response if conv.first_response_at is None else SlaKind.next_response
        start_cycle(ctx, s, conv, kind, UrgencyLevel(conv.urgency), now, msg.id)
    if not triage_text(msg):
        msg.pipeline_status = PipelineStatus.skipped.value
        msg.pipeline_error = "no text to triage (attachments only)"
        return Stored(msg.id, conv.id, False, run_pipeline=False)
    return Stored(msg.id, conv.id, False, run_pipeline=True)


def triage_text(msg: Message) -> str:
    """What the pipeline reads: the text, else the captions of the attachments."""
    if msg.text:
        return msg.text
    captions = [str(a["caption"]) for a in msg.attachments or [] if a.get("caption")]
    return " ".join(captions)


def history(ctx: WorkflowContext, s: Session, msg: Message) -> list[HistoryMessage]:
    n = ctx.settings.history_messages
    if n == 0:
        return []
    rows = list(
        s.scalars(
            select(Message)
            .where(Message.conversation_id == msg.conversation_id, Message.id < msg.id, Message.text != "")
            .order_by(Message.id.desc())
            .limit(n)
        )
    )
    out = []
    for m in reversed(rows):
        role = "customer" if m.direction == Direction.inbound.value else "agent"
        out.append(
            HistoryMessage(role=role, text=m.text[:4000], sent_at=ts(m.customer_sent_at or m.created_at))
        )
    return out


# -- claiming a run ------------------------------------------------------------------------------------------


def requeue(s: Session, message_id: int) -> bool:
    """A helpdesk re-sent a message whose pipeline failed: queue it for the workers again, with a fresh run
    budget (an explicit retry). One still pending is left to the run that has it, or to the workers."""
    won = changed(
        s,
        update(Message)
        .where(Message.id == message_id, Message.pipeline_status == PipelineStatus.failed.value)
        .values(
            pipeline_status=PipelineStatus.pending.value,
            pipeline_error=None,
            pipeline_lease_until=None,
            pipeline_attempts=0,
        ),
    )
    return won == 1


def stranded(now: datetime) -> ColumnElement[bool]:
    """A pending pipeline whose last run should have finished by `now` (its lease ran out)."""
    return (Message.pipeline_status == PipelineStatus.pending.value) & or_(
        Message.pipeline_lease_until.is_(None), Message.pipeline_lease_until <= now
    )


def claim_run(
    ctx: WorkflowContext, s: Session, message_id: int, now: datetime, *, retry_failed: bool
) -> bool:
    """Claim the next run of a stranded pipeline (and of a failed one when `retry_failed`): a conditional
    UPDATE that moves the lease `pipeline_stale_s` ahead and counts the run. True when this caller won; a
    stranded message that used up `pipeline_max_attempts` runs is left to the worker to mark failed."""
    cond: ColumnElement[bool] = stranded(now) & (
        Message.pipeline_attempts < ctx.settings.pipeline_max_attempts
    )
    if retry_failed:
        cond = or_(cond, Message.pipeline_status == PipelineStatus.failed.value)
    won = changed(
        s,
        update(Message)
        .where(Message.id == message_id, cond)
        .values(
            pipeline_status=PipelineStatus.pending.value,
            pipeline_error=None,
            pipeline_lease_until=now + timedelta(seconds=ctx.settings.pipeline_stale_s),
            pipeline_attempts=Message.pipeline_attempts + 1,
        ),
    )
    return won == 1


# -- the pipeline --------------------------------------------------------------------------------------------


def run_pipeline(ctx: WorkflowContext, message_id: int, pipeline: MessagePipelinePort) -> None:
    with ctx.db.session() as s:
        msg = get_row(s, Message, message_id)
        conv = get_row(s, Conversation, msg.conversation_id)
        customer = get_row(s, Customer, conv.customer_id)
        text = triage_text(msg)
        locale = customer.locale
        country, name = customer.country, customer.name  # PII hints: national phones, the profile name
        past = history(ctx, s, msg)
        channel = conv.channel
    facts: list[ContextFact] = []
    if ctx.facts is not None:
        facts = ctx.facts(text, locale)
    started = time.perf_counter()
    error: str | None = None
    result: TriagePipelineRead | None = None
    try:
        request = TriageRequest(
            text=text, locale=locale, channel=channel, history=past, country=country, customer_name=name
        )
        result = pipeline.run(request, facts=facts)
    except ValidationError as exc:
        error = f"invalid_input: {exc.errors()[0].get('msg', 'invalid')}"
        ctx.metrics.pipeline_failures.labels("invalid_input").inc()
    except ReplyDeskError as exc:
        error = f"{exc.code}: {exc.message}"
        ctx.metrics.pipeline_failures.labels(exc.code).inc()
        log.warning("pipeline failed", extra={"message_id": message_id, "error": error})
    finally:
        ctx.metrics.pipeline_seconds.observe(time.perf_counter() - started)
    store_pipeline(ctx, message_id, result, facts, error)


def store_pipeline(
    ctx: WorkflowContext,
    message_id: int,
    result: TriagePipelineRead | None,
    facts: list[ContextFact],
    error: str | None,
) -> None:
    now = ctx.clock.now()
    with ctx.db.session() as s:
        msg = get_row(s, Message, message_id)
        conv = get_row(s, Conversation, msg.conversation_id)
        if error is not None or result is None:
            s.execute(
                update(Message)
                .where(Message.id == message_id, Message.pipeline_status != PipelineStatus.done.value)
                .values(
                    pipeline_status=PipelineStatus.failed.value,
                    pipeline_lease_until=None,
                    pipeline_error=error or "pipeline returned nothing",
                    facts=[f.model_dump(mode="json") for f in facts],
                )
            )
            return
        # Claim the result: a concurrent re-run of the same message stores nothing twice.
        claimed = changed(
            s,
            update(Message)
            .where(Message.id == message_id, Message.pipeline_status != PipelineStatus.done.value)
            .values(
                pipeline_status=PipelineStatus.done.value, pipeline_error=None, pipeline_lease_until=None
            ),
        )
        if claimed != 1:
            return
        s.refresh(msg)
        msg.facts = [f.model_dump(mode="json") for f in facts]
        triage: TriageRead = result
        msg.triage = result.model_dump(mode="json")
        conv.intent = triage.intent.name
        conv.language = triage.language.code
        conv.updated_at = now
        new_urgency = triage.urgency.level
        cycle = s.get(SlaCycle, conv.current_sla_id) if conv.current_sla_id else None
        if cycle is not None and cycle.responded_at is None:
            if cycle.message_id == msg.id:
                conv.urgency = new_urgency.value  # the message that opened the wait sets its urgency
            elif URGENCY_RANK[new_urgency] < URGENCY_RANK[UrgencyLevel(conv.urgency)]:
                conv.urgency = new_urgency.value  # a later, more urgent message tightens the wait
            if cycle.urgency != conv.urgency:
                at_risk, due = ctx.sla.schedule(
                    SlaKind(cycle.kind), UrgencyLevel(conv.urgency), cycle.started_at
                )
                cycle.urgency, cycle.at_risk_at, cycle.due_at = conv.urgency, at_risk, due
        elif URGENCY_RANK[new_urgency] < URGENCY_RANK[UrgencyLevel(conv.urgency)]:
            conv.urgency = new_urgency.value
        drafts = result.drafts.drafts if result.drafts is not None else []
        language = (result.drafts.language if result.drafts is not None else None) or triage.language.code
        for rank, draft in enumerate(drafts, start=1):
            text = draft.text.strip()
            if not text:
                continue
            s.add(
                Suggestion(
                    conversation_id=conv.id,
                    message_id=msg.id,
                    rank=rank,
                    draft_text=text,
                    status=SuggestionStatus.pending.value,
                    intent=triage.intent.name,
                    intent_confidence=triage.intent.confidence,
                    language=language,
                    generator=str(draft.generator) or None,
                    details={
                        "cited_article_ids": list(draft.cited_article_ids),
                        "tone_findings": [f.model_dump(mode="json") for f in draft.tone_findings],
                        "safety_findings": [f.model_dump(mode="json") for f in draft.safety_findings],
                    },
                    created_at=now,
                )
            )
            ctx.metrics.suggestions.inc()
        s.flush()
        stored = list(
            s.scalars(select(Suggestion).where(Suggestion.message_id == msg.id).order_by(Suggestion.rank))
        )
        ctx.events.emit(
            s,
            "suggestions.created",
            {
                "message_id": msg.id,
                "count": len(stored),
                "intent": triage.intent.name,
                "urgency": triage.urgency.level.value,
                "language": language,
                "suggestions": [{"id": x.id, "rank": x.rank, "text": x.draft_text} for x in stored],
                "conversation": {"id": conv.id, "channel": conv.channel, "external_id": conv.external_id},
            },
            now=now,
            conversation_id=conv.id,
            message_id=msg.id,
            deliver_to=note_transport(ctx, conv, "note"),
        )
