"""Outbound messages and their status: queueing a reply or survey as a `message.outbound` webhook, the
dispatcher's delivered/failed outcomes, channel receipts (sent → delivered → read, never backwards), the
agent's read marks on inbound messages, and message listings."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.auth.models import Principal
from service.clock import ensure_utc
from service.db.models import Conversation, Customer, Event, Message
from service.db.rows import changed, get_row
from service.errors import Conflict
from service.workflow.context import MAX_RETRIES, WorkflowContext
from service.workflow.mapping import message_or_404, message_read
from service.workflow.models import (
    Direction,
    MessageKind,
    MessageRead,
    MessageStatus,
    StatusRead,
    StatusReceipt,
    TemplateRef,
)
from service.workflow.queue import close_cycle

STATUS_RANK = {
    MessageStatus.queued: 0,
    MessageStatus.sent: 1,
    MessageStatus.delivered: 2,
    MessageStatus.read: 3,
}


def helpdesk_transport(ctx: WorkflowContext, conv: Conversation) -> str | None:
    """A conversation that lives in a helpdesk with a configured transport (Chatwoot: external id
    `chatwoot:{account}:{conversation}`) gets its replies posted there, instead of the outbound webhook."""
    prefix = conv.external_id.split(":", 1)[0] + ":"
    transport = ctx.dispatcher.transports.get(prefix)
    if transport is None:
        return None
    accepts = getattr(transport, "accepts", None)  # a sender that can tell its own ids from a helpdesk's
    return prefix if accepts is None or accepts(conv.external_id) else None


def note_transport(ctx: WorkflowContext, conv: Conversation, what: str) -> str | None:
    """A transport for something other than replies in this conversation's system: `{prefix}-note:` posts
    suggestions into the helpdesk as a private note (Chatwoot), `{prefix}-read:` marks the customer's
    messages read on the channel (WhatsApp)."""
    prefix = f"{conv.external_id.split(':', 1)[0]}-{what}:"
    return prefix if prefix in ctx.dispatcher.transports else None


# WhatsApp's customer-service window: free-form messages only within 24 hours of the customer's last message;
# after that only approved templates (Cloud API error 131047, "Re-engagement message").
WHATSAPP_WINDOW = timedelta(hours=24)


class OutsideCustomerServiceWindow(Conflict):
    code = "whatsapp_window_closed"


def check_window(conv: Conversation, now: datetime) -> None:
    """A free-form reply on WhatsApp more than 24 hours after the customer last wrote is refused here, with
    what to do instead, rather than failing later on the channel."""
    if conv.channel != "whatsapp":
        return
    # When ReplyDesk received the customer's last message, not the time the message claims: a live message
    # arrives within seconds of being sent, and a backfilled or clock-skewed `sent_at` must not lock agents
    # out. WhatsApp keeps the final say (131047 fails the message with what to do).
    last = conv.last_customer_message_at
    if last is None or now - last <= WHATSAPP_WINDOW:
        return
    hours = (now - last).total_seconds() / 3600
    raise OutsideCustomerServiceWindow(
        f"WhatsApp allows free-form replies only within 24 hours of the customer's last message, and "
        f"{hours:.0f} hours have passed. Send an approved message template instead "
        "(POST /v1/conversations/{id}/reply with `template`), or wait for the customer to write again.",
        details={
            "last_customer_message_at": last.isoformat(),
            "window_hours": 24,
            "channel_error_code": "131047",
        },
    )


def queue_outbound(
    ctx: WorkflowContext,
    s: Session,
    conv: Conversation,
    text: str,
    kind: MessageKind,
    principal: Principal | None,
    suggestion_id: int | None,
    now: datetime,
    template: TemplateRef | None = None,
) -> Message:
    if kind is MessageKind.reply and template is None:
        check_window(conv, now)
    msg = Message(
        conversation_id=conv.id,
        channel=conv.channel,
        direction=Direction.outbound.value,
        kind=kind.value,
        text=text,
        attachments=[],
        status=MessageStatus.queued.value,
        created_at=now,
        author=principal.name if principal else None,
        author_key_id=principal.key_id if principal else None,
        suggestion_id=suggestion_id,
    )
    s.add(msg)
    s.flush()
    customer = get_row(s, Customer, conv.customer_id)
    data: dict[str, Any] = {
        "message": message_read(msg).model_dump(mode="json"),
        "conversation": {"id": conv.id, "channel": conv.channel, "external_id": conv.external_id},
        "customer": {"id": customer.external_id, "name": customer.name, "locale": customer.locale},
    }
    if template is not None:
        data["template"] = template.model_dump(mode="json")
    ctx.events.emit(
        s,
        "message.outbound",
        data,
        now=now,
        conversation_id=conv.id,
        message_id=msg.id,
        deliver_to=helpdesk_transport(ctx, conv),
    )
    ctx.metrics.outbound.labels(kind.value).inc()
    conv.updated_at = now
    if kind is MessageKind.reply:
        conv.last_agent_message_at = now
        if conv.first_response_at is None:
            conv.first_response_at = now
        close_cycle(s, conv, now, "reply")
    return msg


# -- the dispatcher's outcomes -------------------------------------------------------------------------------


def outbound_delivered(ctx: WorkflowContext, s: Session, event: Event, response: httpx.Response) -> None:
    """The helpdesk accepted the outbound webhook: the message is sent (never moves a later status back)."""
    now = ctx.clock.now()
    channel_id = None
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("channel_message_id"), str):
            channel_id = body["channel_message_id"][:200]
    values: dict[str, Any] = {"status": MessageStatus.sent.value, "sent_at": now}
    won = changed(
        s,
        update(Message)
        .where(Message.id == event.message_id, Message.status == MessageStatus.queued.value)
        .values(**values),
    )
    if channel_id:
        s.execute(
            update(Message)
            .where(Message.id == event.message_id, Message.channel_message_id.is_(None))
            .values(channel_message_id=channel_id)
        )
    if won == 1:
        ctx.events.emit(
            s,
            "message.status",
            {"message_id": event.message_id, "status": "sent"},
            now=now,
            conversation_id=event.conversation_id,
            message_id=event.message_id,
        )


def outbound_failed(
    ctx: WorkflowContext, s: Session, event: Event, error: str, code: str | None = None
) -> None:
    """Delivery gave up (retries spent, or the channel refused the message for good: `code` is then the
    channel's error code, e.g. WhatsApp `131047` outside the 24-hour window)."""
    now = ctx.clock.now()
    won = changed(
        s,
        update(Message)
        .where(Message.id == event.message_id, Message.status == MessageStatus.queued.value)
        .values(
            status=MessageStatus.failed.value,
            failed_at=now,
            error=error if code else f"webhook delivery failed: {error}",
            error_code=code,
        ),
    )
    if won == 1:
        ctx.events.emit(
            s,
            "message.failed",
            {"message_id": event.message_id, "error": error, "error_code": code},
            now=now,
            conversation_id=event.conversation_id,
            message_id=event.message_id,
        )


# -- channel receipts ----------------------------------------------------------------------------------------


def receipt_refusal(current: MessageStatus, new: MessageStatus) -> str | None:
    if current is MessageStatus.failed:
        return "message already failed"
    if new is MessageStatus.failed:
        return (
            None
            if STATUS_RANK[current] <= STATUS_RANK[MessageStatus.sent]
            else f"message is already {current.value}; a failure cannot follow"
        )
    if current is new:
        return f"message is already {current.value}"
    if STATUS_RANK[new] < STATUS_RANK[current]:
        return f"status never moves backwards ({current.value} → {new.value})"
    return None


def apply_receipt(ctx: WorkflowContext, message_id: int, receipt: StatusReceipt) -> StatusRead:
    """Apply a channel receipt. Statuses only move forward; `delivered`/`read` on a message still `queued`
    prove it left, so its `sent_at` is filled in — `read` is never shown without a send time before it."""
    for _ in range(MAX_RETRIES):
        now = ctx.clock.now()
        at = ensure_utc(receipt.at) if receipt.at else now
        with ctx.db.session() as s:
            msg = message_or_404(s, message_id)
            if msg.direction != Direction.outbound.value:
                raise Conflict(
                    "receipts are for outbound messages; an agent marks inbound messages read with "
                    f"POST /v1/messages/{message_id}/read"
                )
            current = MessageStatus(msg.status)
            new = MessageStatus(receipt.status.value)
            reason = receipt_refusal(current, new)
            if receipt.channel_message_id and not msg.channel_message_id:
                msg.channel_message_id = receipt.channel_message_id
            if reason:
                ctx.metrics.receipts.labels(new.value, "false").inc()
                return StatusRead(applied=False, reason=reason, message=message_read(msg))
            values: dict[str, Any] = {"status": new.value}
            if new is MessageStatus.failed:
                values.update(
                    failed_at=at,
                    error=receipt.error or "failed on the channel",
                    error_code=receipt.error_code,
                )
            else:
                floor = msg.created_at
                sent_at = msg.sent_at or max(at, floor)
                values["sent_at"] = sent_at
                if new in (MessageStatus.delivered, MessageStatus.read):
                    values["delivered_at"] = msg.delivered_at or max(at, sent_at)
                if new is MessageStatus.read:
                    values["read_at"] = max(at, values["delivered_at"])
            won = changed(
                s,
                update(Message)
                .where(Message.id == message_id, Message.status == current.value)
                .values(**values),
            )
            if won != 1:
                continue  # another receipt won the race: re-read and re-decide
            data: dict[str, Any] = {"message_id": message_id, "status": new.value, "at": at.isoformat()}
            if new is MessageStatus.failed:
                data.update(error=values["error"], error_code=receipt.error_code)
            ctx.events.emit(
                s,
                "message.status",
                data,
                now=now,
                conversation_id=msg.conversation_id,
                message_id=message_id,
            )
            s.flush()
            s.refresh(msg)
            ctx.metrics.receipts.labels(new.value, "true").inc()
            return StatusRead(applied=True, message=message_read(msg))
    raise Conflict(f"message {message_id} is changing too fast; retry the receipt")


def mark_read(ctx: WorkflowContext, message_id: int, principal: Principal) -> MessageRead:
    """An agent opened the conversation up to this inbound message: it (and earlier ones) are read.
    Emits `message.read` once, so the helpdesk can send the channel's read receipt."""
    now = ctx.clock.now()
    with ctx.db.session() as s:
        msg = message_or_404(s, message_id)
        if msg.direction != Direction.inbound.value:
            raise Conflict("only inbound messages have an agent read state")
        unread = list(
            s.scalars(
                select(Message)
                .where(
                    Message.conversation_id == msg.conversation_id,
                    Message.direction == Direction.inbound.value,
                    Message.id <= msg.id,
                    Message.agent_read_at.is_(None),
                )
                .order_by(Message.id)
            )
        )
        ids = []
        for m in unread:
            won = changed(
                s,
                update(Message)
                .where(Message.id == m.id, Message.agent_read_at.is_(None))
                .values(agent_read_at=now, agent_read_by=principal.name),
            )
            if won == 1:
                ids.append(m)
        if ids:
            conv = get_row(s, Conversation, msg.conversation_id)
            ctx.events.emit(
                s,
                "message.read",
                {
                    "message_ids": [m.id for m in ids],
                    "channel_message_ids": [m.channel_message_id for m in ids if m.channel_message_id],
                    "by": principal.name,
                    "conversation": {"id": conv.id, "channel": conv.channel, "external_id": conv.external_id},
                },
                now=now,
                conversation_id=msg.conversation_id,
                message_id=msg.id,
                deliver_to=note_transport(ctx, conv, "read"),
            )
        s.flush()
        s.refresh(msg)
        return message_read(msg)


# -- lookups and listings ------------------------------------------------------------------------------------


def outbound_by_channel_id(ctx: WorkflowContext, channel: str, channel_message_id: str) -> int | None:
    with ctx.db.session() as s:
        return s.scalars(
            select(Message.id).where(
                Message.channel == channel,
                Message.channel_message_id == channel_message_id,
                Message.direction == Direction.outbound.value,
            )
        ).first()


def outbound_sent_before(
    ctx: WorkflowContext,
    channel: str,
    conversation_external_id: str,
    at: datetime,
    status: MessageStatus = MessageStatus.read,
) -> list[int]:
    """Outbound messages of a thread, sent by `at` and not yet at `status` (for Messenger's delivery and read
    watermarks: everything sent up to the watermark has been delivered / read)."""
    below = [m.value for m, rank in STATUS_RANK.items() if 1 <= rank < STATUS_RANK[status]]
    with ctx.db.session() as s:
        return list(
            s.scalars(
                select(Message.id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(
                    Conversation.channel == channel,
                    Conversation.external_id == conversation_external_id,
                    Message.direction == Direction.outbound.value,
                    Message.status.in_(below),
                    Message.sent_at <= at,
                )
                .order_by(Message.id)
            )
        )


def list_messages(
    ctx: WorkflowContext,
    *,
    status: MessageStatus | None,
    direction: Direction | None,
    conversation_id: int | None,
    limit: int,
) -> list[MessageRead]:
    with ctx.db.session() as s:
        q = select(Message).order_by(Message.id).limit(limit)
        if status:
            q = q.where(Message.status == status.value)
        if direction:
            q = q.where(Message.direction == direction.value)
        if conversation_id is not None:
            q = q.where(Message.conversation_id == conversation_id)
        return [message_read(m) for m in s.scalars(q)]


def get_message(ctx: WorkflowContext, message_id: int) -> MessageRead:
    with ctx.db.session() as s:
        return message_read(message_or_404(s, message_id))
