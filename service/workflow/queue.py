"""The agents' queue and the SLA: response-time cycles (one per customer wait), the queue ordered by SLA
state, the `sla.at_risk` / `sla.breached` events and the counts behind the Prometheus gauges.

Reads never write: the queue computes each wait's state from its stored `at_risk_at` / `due_at` at read time,
so it answers while the database is write-locked; announcing a state (`scan_sla`) is the worker's job."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import Conversation, Customer, Message, SlaCycle, Suggestion, WebhookDelivery
from service.triage.models import UrgencyLevel
from service.workflow.context import WorkflowContext
from service.workflow.mapping import assignment_read, sla_read
from service.workflow.models import (
    ConversationStatus,
    Direction,
    QueueFilter,
    QueueItem,
    QueueRead,
    SlaKind,
    SlaState,
    SuggestionStatus,
)
from service.workflow.sla import STATE_RANK, URGENCY_RANK, SlaPolicy

# -- SLA cycles ----------------------------------------------------------------------------------------------


def start_cycle(
    ctx: WorkflowContext,
    s: Session,
    conv: Conversation,
    kind: SlaKind,
    urgency: UrgencyLevel,
    started: datetime,
    message_id: int,
) -> SlaCycle:
    at_risk, due = ctx.sla.schedule(kind, urgency, started)
    cycle = SlaCycle(
        conversation_id=conv.id,
        message_id=message_id,
        kind=kind.value,
        urgency=urgency.value,
        started_at=started,
        at_risk_at=at_risk,
        due_at=due,
    )
    s.add(cycle)
    s.flush()
    conv.current_sla_id = cycle.id
    conv.awaiting_since = started
    return cycle


def close_cycle(s: Session, conv: Conversation, now: datetime, by: str) -> None:
    if conv.current_sla_id is not None:
        cycle = s.get(SlaCycle, conv.current_sla_id)
        if cycle is not None and cycle.responded_at is None:
            cycle.responded_at = now
            cycle.closed_by = by
            cycle.met = now <= cycle.due_at
    conv.current_sla_id = None
    conv.awaiting_since = None


# -- the queue -----------------------------------------------------------------------------------------------


def queue(
    ctx: WorkflowContext,
    *,
    state: SlaState | None = None,
    limit: int = 100,
    filters: QueueFilter | None = None,
) -> QueueRead:
    """Open conversations, most at risk first. `counts` are over the filtered conversations, before `state`
    and `limit`.

    Two reads: every filtered open conversation is ranked from four columns (its id, urgency and its wait's
    `at_risk_at` / `due_at`), then only the page's conversations are read in full with their customer,
    pending suggestions, unread messages and last message. The cost grows with the open conversations, not
    with the history of resolved ones or their messages."""
    now = ctx.clock.now()
    f = filters or QueueFilter()
    query = (
        select(Conversation.id, Conversation.urgency, SlaCycle.at_risk_at, SlaCycle.due_at)
        .outerjoin(SlaCycle, SlaCycle.id == Conversation.current_sla_id)
        .where(Conversation.status == ConversationStatus.open.value)
    )
    if f.channel is not None:
        query = query.where(Conversation.channel == f.channel)
    if f.urgency is not None:
        query = query.where(Conversation.urgency == f.urgency.value)
    if f.intent is not None:
        query = query.where(Conversation.intent == f.intent)
    if f.language is not None:
        query = query.where(Conversation.language == f.language)
    if f.unassigned:
        query = query.where(Conversation.assigned_key_id.is_(None))
    elif f.assigned_key_id is not None:
        query = query.where(Conversation.assigned_key_id == f.assigned_key_id)
    counts = {st.value: 0 for st in SlaState}
    with ctx.db.session() as s:
        ranked: list[tuple[tuple[int, bool, int, datetime, int], SlaState, int]] = []
        for conv_id, urgency, at_risk_at, due_at in s.execute(query):
            st = SlaPolicy.state(at_risk_at, due_at, now) if due_at is not None else SlaState.ok
            counts[st.value] += 1
            ranked.append((_rank(st, due_at, UrgencyLevel(urgency), conv_id, now), st, conv_id))
        ranked.sort(key=lambda r: r[0])
        page = [conv_id for _, st, conv_id in ranked if state is None or st is state][:limit]
        items = _queue_items(ctx, s, page, now)
    return QueueRead(now=now, counts=counts, items=items)


def _queue_items(ctx: WorkflowContext, s: Session, ids: list[int], now: datetime) -> list[QueueItem]:
    """The queue rows of these conversations, in this order."""
    if not ids:
        return []
    convs = {c.id: c for c in s.scalars(select(Conversation).where(Conversation.id.in_(ids)))}
    cycles = {
        c.id: c
        for c in s.scalars(
            select(SlaCycle).where(
                SlaCycle.id.in_([c.current_sla_id for c in convs.values() if c.current_sla_id])
            )
        )
    }
    customers = {
        c.id: c
        for c in s.scalars(select(Customer).where(Customer.id.in_({c.customer_id for c in convs.values()})))
    }
    pending: dict[int, int] = dict(
        s.execute(
            select(Suggestion.conversation_id, func.count())
            .where(
                Suggestion.conversation_id.in_(ids),
                Suggestion.status == SuggestionStatus.pending.value,
            )
            .group_by(Suggestion.conversation_id)
        ).all()
    )
    unread: dict[int, int] = dict(
        s.execute(
            select(Message.conversation_id, func.count())
            .where(
                Message.conversation_id.in_(ids),
                Message.direction == Direction.inbound.value,
                Message.agent_read_at.is_(None),
            )
            .group_by(Message.conversation_id)
        ).all()
    )
    last_ids = (
        select(func.max(Message.id))
        .where(Message.conversation_id.in_(ids), Message.direction == Direction.inbound.value)
        .group_by(Message.conversation_id)
    )
    # columns only: a Message row carries its triage JSON, which the queue never needs
    last_text = {
        conv_id: text[:200]
        for conv_id, text in s.execute(
            select(Message.conversation_id, Message.text).where(Message.id.in_(last_ids))
        )
    }
    items = []
    for conv_id in ids:
        c = convs.get(conv_id)
        if c is None:
            continue
        cycle = cycles.get(c.current_sla_id) if c.current_sla_id else None
        sla = sla_read(ctx.sla, cycle, now) if cycle else None
        customer = customers.get(c.customer_id)
        items.append(
            QueueItem(
                conversation_id=c.id,
                channel=c.channel,
                external_id=c.external_id,
                customer_name=customer.name if customer else None,
                urgency=UrgencyLevel(c.urgency),
                intent=c.intent,
                state=sla.state if sla else SlaState.ok,
                sla_kind=sla.kind if sla else None,
                waiting_since=sla.started_at if sla else None,
                due_at=sla.due_at if sla else None,
                elapsed_ratio=sla.elapsed_ratio if sla else None,
                pending_suggestions=pending.get(c.id, 0),
                unread_messages=unread.get(c.id, 0),
                last_message_text=last_text.get(c.id),
                language=c.language,
                customer_id=customer.external_id if customer else None,
                at_risk_at=sla.at_risk_at if sla else None,
                assignment=assignment_read(c),
            )
        )
    return items


def _rank(
    state: SlaState, due_at: datetime | None, urgency: UrgencyLevel, conversation_id: int, now: datetime
) -> tuple[int, bool, int, datetime, int]:
    """The queue's order: breached, at risk, ok; waiting before answered; then urgency and due time."""
    far = datetime.max.replace(tzinfo=now.tzinfo)
    return (STATE_RANK[state], due_at is None, URGENCY_RANK[urgency], due_at or far, conversation_id)


def queue_order(ctx: WorkflowContext, limit: int) -> list[int]:
    """The ids of the open conversations in queue order, from two columns per row (the console's next /
    previous conversation; the full queue reads much more)."""
    now = ctx.clock.now()
    with ctx.db.session() as s:
        rows = s.execute(
            select(Conversation.id, Conversation.urgency, SlaCycle.at_risk_at, SlaCycle.due_at)
            .outerjoin(
                SlaCycle,
                (SlaCycle.id == Conversation.current_sla_id) & SlaCycle.responded_at.is_(None),
            )
            .where(Conversation.status == ConversationStatus.open.value)
        ).all()
    ranked = sorted(
        rows,
        key=lambda r: _rank(
            SlaPolicy.state(r.at_risk_at, r.due_at, now) if r.due_at else SlaState.ok,
            r.due_at,
            UrgencyLevel(r.urgency),
            r.id,
            now,
        ),
    )
    return [r.id for r in ranked[:limit]]


def snapshot(ctx: WorkflowContext) -> dict[str, dict[str, int]]:
    """Counts for the Prometheus gauges (queue per SLA state, outbox per status)."""
    now = ctx.clock.now()
    queue_counts = {st.value: 0 for st in SlaState}
    with ctx.db.session() as s:
        rows = s.execute(
            select(SlaCycle.at_risk_at, SlaCycle.due_at)
            .join(Conversation, Conversation.current_sla_id == SlaCycle.id)
            .where(Conversation.status == ConversationStatus.open.value)
        ).all()
        open_count = (
            s.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(Conversation.status == ConversationStatus.open.value)
            )
            or 0
        )
        outbox: dict[str, int] = dict(
            s.execute(select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)).all()
        )
    for at_risk_at, due_at in rows:
        queue_counts[SlaPolicy.state(at_risk_at, due_at, now).value] += 1
    queue_counts[SlaState.ok.value] += open_count - len(rows)
    return {"queue": queue_counts, "outbox": {k: int(v) for k, v in outbox.items()}}


def facets(ctx: WorkflowContext) -> dict[str, list[str]]:
    """The channels, intents and languages of open conversations (the queue's filter choices)."""
    out: dict[str, list[str]] = {}
    with ctx.db.session() as s:
        for name, column in (
            ("channel", Conversation.channel),
            ("intent", Conversation.intent),
            ("language", Conversation.language),
        ):
            rows = s.scalars(
                select(column)
                .where(Conversation.status == ConversationStatus.open.value, column.is_not(None))
                .distinct()
                .order_by(column)
            )
            out[name] = [str(v) for v in rows]
    return out
