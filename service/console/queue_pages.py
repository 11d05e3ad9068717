"""The queue page (filters, rows fragment) and the console's event stream that keeps it live."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import HTMLResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from service.console import views
from service.console.deps import (
    ConsoleUser,
    ReaderDep,
)
from service.console.pages import PageDep, router
from service.errors import InvalidInput
from service.triage.models import Channel, UrgencyLevel
from service.workflow.deps import WorkflowDep
from service.workflow.feed import follow
from service.workflow.models import (
    MAX_ROW_ID,
    QueueFilter,
)

# -- the queue ----------------------------------------------------------------------------------------------


# Events that change what the queue shows (the rest of a batch may still change an open conversation).
QUEUE_EVENTS = frozenset(
    {
        "message.received",
        "suggestions.created",
        "suggestion.approved",
        "suggestion.edited",
        "suggestion.rejected",
        "message.outbound",
        "conversation.resolved",
        "conversation.assigned",
        "sla.at_risk",
        "sla.breached",
    }
)


def _queue_filter(
    user: ConsoleUser,
    channel: str | None,
    urgency: str | None,
    intent: str | None,
    language: str | None,
    assigned: str | None,
) -> tuple[QueueFilter, dict[str, str]]:
    chosen = {
        k: v
        for k, v in {
            "channel": channel,
            "urgency": urgency,
            "intent": intent,
            "language": language,
            "assigned": assigned,
        }.items()
        if v
    }
    try:
        level = UrgencyLevel(urgency) if urgency else None
    except ValueError as exc:
        raise InvalidInput(f"urgency {urgency!r} is not one of {[u.value for u in UrgencyLevel]}") from exc
    filters = QueueFilter(
        channel=channel or None,
        urgency=level,
        intent=intent or None,
        language=language or None,
        assigned_key_id=user.principal.key_id if assigned == "mine" else None,
        unassigned=assigned == "unassigned",
    )
    return filters, chosen


QueryText = Annotated[str | None, Query(max_length=64)]
AssignedQuery = Annotated[Literal["", "mine", "unassigned"] | None, Query()]


@router.get("/console/queue", response_class=HTMLResponse)
def queue_page(
    request: Request,
    user: ReaderDep,
    workflow: WorkflowDep,
    page: PageDep,
    channel: QueryText = None,
    urgency: QueryText = None,
    intent: QueryText = None,
    language: QueryText = None,
    assigned: AssignedQuery = None,
    fragment: Literal["rows"] | None = None,
) -> HTMLResponse:
    filters, chosen = _queue_filter(user, channel, urgency, intent, language, assigned)
    data = workflow.queue(limit=workflow.settings.console_queue_limit, filters=filters)
    context = {
        "queue": data,
        "chosen": chosen,
        "query": urlencode(chosen),
        "facets": workflow.queue_facets(),
        "channels": [c.value for c in Channel],
        "urgencies": [u.value for u in UrgencyLevel],
        "labels": views.SLA_LABELS,
        "remaining": views.remaining_text,
    }
    name = "_queue_rows.html" if fragment == "rows" else "queue.html"
    return page.render(name, context, user=user)


@router.get("/console/events")
async def console_events(
    request: Request,
    user: ReaderDep,
    workflow: WorkflowDep,
    conversation_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
) -> EventSourceResponse:
    """The event log as coarse signals for htmx: `queue` when the queue may have changed, `thread` and
    `presence` when the open conversation did. Same log and follower as GET /v1/events."""

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for batch in follow(
            workflow.events,
            start=None,
            types=None,
            poll_s=workflow.settings.events_poll_s,
            is_disconnected=request.is_disconnected,
        ):
            names: list[str] = []
            if any(ev.type in QUEUE_EVENTS for ev in batch):
                names.append("queue")
            mine = [ev for ev in batch if conversation_id and ev.conversation_id == conversation_id]
            if any(ev.type != "conversation.assigned" for ev in mine):
                names.append("thread")
            if any(ev.type == "conversation.assigned" for ev in mine):
                names.append("presence")
            for name in names:
                yield ServerSentEvent(data=json.dumps({"last": batch[-1].id}), event=name)

    return EventSourceResponse(stream(), ping=15)
