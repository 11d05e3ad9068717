"""What channels report besides customer messages: replies a person sent outside ReplyDesk (the helpdesk,
Meta's inbox, the WhatsApp Business app), statuses of the messages ReplyDesk sent (also before their id is
known), Messenger's delivery/read watermarks, and a helpdesk resolving or reopening a conversation.

A reply sent elsewhere answers the customer's wait like one sent from here: it is stored as the human's
outbound message (status `sent`), the SLA cycle it answers closes (first response met or missed by its own
time), and the pending suggestions are superseded. It is announced as `message.external_reply`, never as
`message.outbound`, so nothing sends it a second time.

A status for a message id nobody reported yet (the helpdesk answers our webhook after the channel already sent
`delivered`) is kept in `pending_receipts` and applied by the worker once an outbound message carries that id;
after `pending_receipt_ttl_s` it is dropped and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from service.auth.models import Principal
from service.clock import ensure_utc
from service.db.models import Conversation, Message, PendingReceipt, SlaCycle
from service.db.rows import changed
from service.errors import Conflict
from service.workflow.context import WorkflowContext
from service.workflow.conversations import resolve
from service.workflow.mapping import message_read
from service.workflow.models import (
    ConversationStatus,
    Direction,
    ExternalReplyCreate,
    MessageKind,
    MessageStatus,
    ReceiptStatus,
    ResolveRequest,
    StatusReceipt,
)
from service.workflow.outbound import STATUS_RANK, apply_receipt, outbound_by_channel_id, outbound_sent_before
from service.workflow.queue import close_cycle
from service.workflow.suggestions import supersede

log = logging.getLogger("replydesk.channels")

# Our own reply coming back as an echo before the channel's id for it was recorded (the echo can overtake the
# answer to our send): the same text in the same thread, sent by ReplyDesk this recently, is ours.
ECHO_WINDOW = timedelta(minutes=10)


def find_conversation(s: Session, channel: str | None, external_id: str) -> Conversation | None:
    """The conversation of a channel thread; `channel` None: by the external id alone (a helpdesk's thread id,
    `chatwoot:{account}:{conversation}`, names one conversation whatever channel it serves)."""
    q = select(Conversation).where(Conversation.external_id == external_id)
    if channel is not None:
        q = q.where(Conversation.channel == channel)
    return s.scalars(q.order_by(Conversation.id.desc()).limit(1)).first()


# -- replies sent elsewhere ----------------------------------------------------------------------------------


def record_external_reply(ctx: WorkflowContext, req: ExternalReplyCreate) -> str:
    """Store a reply a person sent outside ReplyDesk. Returns `recorded`, `duplicate` (seen before), `ours`
    (the echo of a reply ReplyDesk sent) or `unknown_conversation` (a thread ReplyDesk never saw)."""
    now = ctx.clock.now()
    with ctx.db.session() as s:
        conv = find_conversation(s, req.channel.value, req.conversation_external_id)
        if conv is None:
            return "unknown_conversation"
        if (
            req.channel_message_id
            and s.scalars(
                select(Message.id).where(
                    Message.channel == conv.channel, Message.channel_message_id == req.channel_message_id
                )
            ).first()
        ):
            return "duplicate"
        ours = s.scalars(
            select(Message)
            .where(
                Message.conversation_id == conv.id,
                Message.direction == Direction.outbound.value,
                Message.author_key_id.is_not(None),
                Message.channel_message_id.is_(None),
                Message.text == req.text,
                Message.status.in_([MessageStatus.queued.value, MessageStatus.sent.value]),
                Message.created_at >= now - ECHO_WINDOW,
            )
            .order_by(Message.id.desc())
            .limit(1)
        ).first()
        if ours is not None and req.text:
            if req.channel_message_id:
                s.execute(
                    update(Message)
                    .where(Message.id == ours.id, Message.channel_message_id.is_(None))
                    .values(channel_message_id=req.channel_message_id)
                )
            return "ours"
        at = min(ensure_utc(req.sent_at), now)
        msg = Message(
            conversation_id=conv.id,
            channel=conv.channel,
            direction=Direction.outbound.value,
            kind=MessageKind.reply.value,
            channel_message_id=req.channel_message_id,
            text=req.text,
            attachments=[a.model_dump(exclude_none=True) for a in req.attachments],
            status=MessageStatus.sent.value,
            created_at=now,
            sent_at=at,
            author=req.author or "helpdesk",
        )
        s.add(msg)
        s.flush()
        conv.updated_at = now
        conv.last_agent_message_at = max(at, conv.last_agent_message_at or at)
        cycle = s.get(SlaCycle, conv.current_sla_id) if conv.current_sla_id else None
        if cycle is not None and at >= cycle.started_at:  # a reply older than the wait does not answer it
            if conv.first_response_at is None:
                conv.first_response_at = at
            close_cycle(s, conv, at, "reply")
            supersede(s, conv.id, up_to_message_id=None, keep=None)
        elif conv.first_response_at is None and conv.first_customer_message_at is not None:
            conv.first_response_at = at
        ctx.events.emit(
            s,
            "message.external_reply",
            {
                "message": message_read(msg).model_dump(mode="json"),
                "conversation": {"id": conv.id, "channel": conv.channel, "external_id": conv.external_id},
            },
            now=now,
            conversation_id=conv.id,
            message_id=msg.id,
        )
        ctx.metrics.outbound.labels("external_reply").inc()
        return "recorded"


# -- statuses ------------------------------------------------------------------------------------------------


def apply_channel_receipt(ctx: WorkflowContext, channel: str, receipt: StatusReceipt) -> str:
    """A channel status for one of our messages, named by the channel's id: `applied`, `refused` (it would
    move the status backwards, or repeats it), or `pending` (no message has that id yet: kept for later)."""
    if not receipt.channel_message_id:
        return "refused"
    message_id = outbound_by_channel_id(ctx, channel, receipt.channel_message_id)
    if message_id is None:
        now = ctx.clock.now()
        with ctx.db.session() as s:
            s.add(
                PendingReceipt(
                    channel=channel,
                    channel_message_id=receipt.channel_message_id,
                    status=receipt.status.value,
                    at=ensure_utc(receipt.at) if receipt.at else now,
                    error=receipt.error,
                    error_code=receipt.error_code,
                    created_at=now,
                )
            )
        ctx.metrics.pending_receipts.labels("kept").inc()
        return "pending"
    return "applied" if apply_receipt(ctx, message_id, receipt).applied else "refused"


def apply_watermark(
    ctx: WorkflowContext, channel: str, conversation_external_id: str, at: datetime, status: ReceiptStatus
) -> int:
    """Messenger/Instagram `delivery`/`read` watermarks: every message we sent in the thread up to `at` has
    reached `status`. Returns how many messages moved."""
    moved = 0
    target = MessageStatus(status.value)
    for message_id in outbound_sent_before(ctx, channel, conversation_external_id, at, target):
        if apply_receipt(ctx, message_id, StatusReceipt(status=status, at=at)).applied:
            moved += 1
    return moved


@dataclass
class PendingCounts:
    applied: int = 0
    refused: int = 0
    expired: int = 0


def apply_pending_receipts(ctx: WorkflowContext, *, limit: int = 200) -> PendingCounts:
    """Apply kept statuses whose message id is now known (oldest status first, so `delivered` comes before
    `read`), and drop the ones older than `pending_receipt_ttl_s`. Safe on several workers: a status applied
    twice is refused the second time (statuses never repeat or move back)."""
    counts = PendingCounts()
    with ctx.db.session() as s:
        rows = list(
            s.execute(
                select(PendingReceipt, Message.id)
                .join(
                    Message,
                    (Message.channel == PendingReceipt.channel)
                    & (Message.channel_message_id == PendingReceipt.channel_message_id)
                    & (Message.direction == Direction.outbound.value),
                )
                .order_by(PendingReceipt.id)
                .limit(limit)
            ).tuples()
        )
        found = [
            (
                row.id,
                message_id,
                StatusReceipt(
                    status=ReceiptStatus(row.status),
                    at=row.at,
                    channel_message_id=row.channel_message_id,
                    error=row.error,
                    error_code=row.error_code,
                ),
            )
            for row, message_id in rows
        ]
    found.sort(key=lambda f: (f[2].at, STATUS_RANK.get(MessageStatus(f[2].status.value), 9)))
    for pending_id, message_id, receipt in found:
        applied = apply_receipt(ctx, message_id, receipt).applied
        with ctx.db.session() as s:
            if changed(s, delete(PendingReceipt).where(PendingReceipt.id == pending_id)) != 1:
                continue  # another worker took it
        if applied:
            counts.applied += 1
            ctx.metrics.pending_receipts.labels("applied").inc()
        else:
            counts.refused += 1
            ctx.metrics.pending_receipts.labels("refused").inc()
    cutoff = ctx.clock.now() - timedelta(seconds=ctx.settings.pending_receipt_ttl_s)
    with ctx.db.session() as s:
        counts.expired = changed(s, delete(PendingReceipt).where(PendingReceipt.created_at < cutoff))
    if counts.expired:
        ctx.metrics.pending_receipts.labels("expired").inc(counts.expired)
        log.warning("channel statuses expired: their message id never arrived", extra={"n": counts.expired})
    return counts


# -- the helpdesk resolving or reopening ---------------------------------------------------------------------


def external_status(
    ctx: WorkflowContext,
    channel: str | None,
    conversation_external_id: str,
    status: str,
    principal: Principal,
    by: str | None = None,
) -> str:
    """The helpdesk resolved (or reopened) its conversation: ours follows. Returns `resolved`, `reopened`,
    `unchanged` or `unknown_conversation`."""
    with ctx.db.session() as s:
        conv = find_conversation(s, channel, conversation_external_id)
        if conv is None:
            return "unknown_conversation"
        conversation_id, current = conv.id, conv.status
    if status == "resolved":
        if current != ConversationStatus.open.value:
            return "unchanged"
        who = Principal(key_id=principal.key_id, name=(by or principal.name)[:100], role=principal.role)
        try:
            resolve(ctx, conversation_id, ResolveRequest(note="resolved in the helpdesk"), who)
        except Conflict:
            return "unchanged"  # resolved meanwhile
        return "resolved"
    if status == "open" and current == ConversationStatus.resolved.value:
        now = ctx.clock.now()
        with ctx.db.session() as s:
            won = changed(
                s,
                update(Conversation)
                .where(
                    Conversation.id == conversation_id,
                    Conversation.status == ConversationStatus.resolved.value,
                )
                .values(
                    status=ConversationStatus.open.value,
                    resolved_at=None,
                    resolved_by=None,
                    opened_at=now,
                    updated_at=now,
                ),
            )
            if won != 1:
                return "unchanged"
            ctx.events.emit(
                s,
                "conversation.reopened",
                {"conversation_id": conversation_id, "by": by or principal.name},
                now=now,
                conversation_id=conversation_id,
            )
        return "reopened"
    return "unchanged"


def skipped(ctx: WorkflowContext, type_: str, reason: str) -> None:
    """An event a channel sent that ReplyDesk does not act on: counted by type and logged, never silent."""
    ctx.metrics.channel_skipped.labels(type_[:60]).inc()
    log.info("channel event skipped", extra={"event_type": type_, "reason": reason[:300]})
