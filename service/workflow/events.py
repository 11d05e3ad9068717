"""The event log: every state change worth telling the helpdesk is one row, read by GET /v1/events (SSE) and
delivered through the signed webhook outbox when a webhook URL is configured."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db import Database
from service.db.models import Event, WebhookDelivery
from service.workflow.models import EventRead
from service.workflow.webhooks import EVENT_CLASSES, delivery_priority, receiver_of, webhook_subscription

_WAKE_PENDING = "replydesk.wake_dispatcher"


class EventLog:
    """Appends events and their outbox rows. To `webhook_url` go the events someone must act on and the
    informational types in `webhook_events` (`["*"]`: all; unknown names raise `WebhookEventsInvalid`); an
    explicit `deliver_to` (a helpdesk's or a channel's transport) is that destination's own subscription.
    Every event is stored either way (GET /v1/events reads them all)."""

    def __init__(self, db: Database, webhook_url: str | None, webhook_events: Iterable[str] = ()) -> None:
        self.db = db
        self.webhook_url = webhook_url
        self.subscribed = webhook_subscription(webhook_events)
        self.new_work = threading.Event()  # set when an outbox row is committed: wakes the dispatcher
        self.on_emit: list = []  # callables(type) -> None, e.g. Prometheus counters

    def goes_to_webhook(self, type_: str) -> bool:
        cls = EVENT_CLASSES.get(type_)
        return cls is None or cls.actionable or type_ in self.subscribed

    def emit(
        self,
        s: Session,
        type_: str,
        data: dict[str, Any],
        *,
        now: datetime,
        conversation_id: int | None = None,
        message_id: int | None = None,
        dedupe_key: str | None = None,
        deliver_to: str | None = None,
    ) -> Event:
        """Append an event; with a webhook URL that takes its type (or `deliver_to`, e.g. a helpdesk
        transport `chatwoot:` instead of the webhook) it also goes into the outbox, with its claim priority.
        The dispatcher is woken when the transaction commits, not before (it would find nothing yet)."""
        event = Event(
            type=type_,
            conversation_id=conversation_id,
            message_id=message_id,
            payload=data,
            created_at=now,
            dedupe_key=dedupe_key,
        )
        s.add(event)
        s.flush()
        url = deliver_to or (self.webhook_url if self.goes_to_webhook(type_) else None)
        if url:
            s.add(
                WebhookDelivery(
                    id=str(uuid.uuid4()),
                    event_id=event.id,
                    url=url,
                    receiver=receiver_of(url),
                    priority=int(delivery_priority(type_, data)),
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            self._wake_after_commit(s)
        for hook in self.on_emit:
            hook(type_)
        return event

    def _wake_after_commit(self, s: Session) -> None:
        if s.info.get(_WAKE_PENDING):
            return
        s.info[_WAKE_PENDING] = True

        def wake(session: Session) -> None:
            session.info.pop(_WAKE_PENDING, None)
            self.new_work.set()

        sa_event.listen(s, "after_commit", wake, once=True)

    def latest_id(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.max(Event.id))) or 0)

    def since(self, last_id: int, *, types: set[str] | None = None, limit: int = 100) -> list[EventRead]:
        with self.db.session() as s:
            q = select(Event).where(Event.id > last_id).order_by(Event.id).limit(limit)
            if types:
                q = q.where(Event.type.in_(sorted(types)))
            return [to_read(e) for e in s.scalars(q)]


def to_read(e: Event) -> EventRead:
    return EventRead(
        id=e.id,
        type=e.type,
        created_at=e.created_at,
        conversation_id=e.conversation_id,
        message_id=e.message_id,
        data=e.payload,
    )
