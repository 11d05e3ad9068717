"""The event log: every state change worth telling the helpdesk is one row, read by GET /v1/events (SSE) and
delivered through the signed webhook outbox when a webhook URL is configured."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any

from anyio import to_thread
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
        deliver_to: str | None = None,
    ) -> Event:
        """Append an event; with a webhook URL (or `deliver_to`, e.g. a helpdesk transport `chatwoot:`
        instead of the webhook) it also goes into the outbox."""
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
        url = deliver_to or self.webhook_url
        if url:
            s.add(
                WebhookDelivery(
                    id=str(uuid.uuid4()),
                    event_id=event.id,
                    url=url,
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


async def follow(
    log: EventLog,
    *,
    start: int | None,
    types: set[str] | None,
    poll_s: float,
    is_disconnected: Callable[[], Awaitable[bool]],
    max_events: int | None = None,
    max_wait_s: float | None = None,
) -> AsyncIterator[list[EventRead]]:
    """Batches of new events, oldest first, from after `start` (default: from now on), until the client
    leaves, `max_events` were yielded or nothing came for `max_wait_s`. Every SSE stream (the API's and the
    console's) reads the log through this."""
    last = start if start is not None else await to_thread.run_sync(log.latest_id)
    sent = 0
    idle_since = time.monotonic()
    while True:
        batch = await to_thread.run_sync(partial(log.since, last, types=types))
        if max_events is not None:
            batch = batch[: max_events - sent]
        if batch:
            last = batch[-1].id
            sent += len(batch)
            idle_since = time.monotonic()
            yield batch
            if max_events is not None and sent >= max_events:
                return
            continue
        if max_wait_s is not None and time.monotonic() - idle_since >= max_wait_s:
            return
        if await is_disconnected():
            return
        await asyncio.sleep(poll_s)
