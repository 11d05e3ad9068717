"""The event log: every state change worth telling the helpdesk is one row, read by GET /v1/events (SSE) and
delivered through the signed webhook outbox when a webhook URL is configured."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db import Database
from service.db.models import Event, WebhookDelivery
from service.workflow.models import EventRead


class EventLog:
    def __init__(self, db: Database, webhook_url: str | None) -> None:
        self.db = db
        self.webhook_url = webhook_url
        self.new_work = threading.Event()  # set when an outbox row is added: wakes the dispatcher
        self.on_emit: list = []  # callables(type) -> None, e.g. Prometheus counters

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
    ) -> Event:
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
        if self.webhook_url:
            s.add(
                WebhookDelivery(
                    id=str(uuid.uuid4()),
                    event_id=event.id,
                    url=self.webhook_url,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            self.new_work.set()
        for hook in self.on_emit:
            hook(type_)
        return event

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
