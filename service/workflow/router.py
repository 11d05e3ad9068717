"""Workflow endpoints: ingest, suggestions and decisions, receipts and read state, queue, resolution, events,
KPIs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sse_starlette import EventSourceResponse, ServerSentEvent

from service.auth.deps import PrincipalDep, require_roles
from service.auth.models import Role
from service.drafting.deps import LLMWorkDep
from service.drafting.offload import OVERLOADED_RESPONSE
from service.errors import InvalidInput
from service.pipeline.deps import MessagePipelineDep
from service.triage.models import UrgencyLevel
from service.workflow.deps import WorkflowDep
from service.workflow.feed import follow
from service.workflow.kpis import compute_kpis
from service.workflow.models import (
    MAX_ROW_ID,
    ApproveRequest,
    AssignUpdate,
    ConversationDetail,
    ConversationRead,
    DecisionRead,
    Direction,
    IngestRead,
    KpiRead,
    MessageCreate,
    MessageRead,
    MessageStatus,
    PresenceRead,
    QueueFilter,
    QueueRead,
    RejectRequest,
    ReplyRequest,
    ResolveRead,
    ResolveRequest,
    RowId,
    RowIdQuery,
    SlaState,
    StatusRead,
    StatusReceipt,
    SuggestionRead,
    SuggestionStatus,
    SurveyRead,
    SurveyResponseCreate,
)

router = APIRouter(tags=["workflow"])

# Who may do what (admin always may): README § Security › Roles, checked by tests/test_security_roles.py.
INTEGRATION = Depends(require_roles(Role.integration))
AGENT = Depends(require_roles(Role.agent))
AGENT_OR_INTEGRATION = Depends(require_roles(Role.agent, Role.integration))
# Reading customer data: the people who work it, the channel that delivers it, auditors granted it.
READ_CUSTOMER_DATA = Depends(require_roles(Role.agent, Role.integration, Role.auditor))
READ_THREADS = Depends(require_roles(Role.agent, Role.auditor))
EVALUATOR = Depends(require_roles(Role.evaluator, Role.auditor))
# Aggregate KPIs hold no customer data: the agents see how their team does (the console's KPI page).
KPI_READERS = Depends(require_roles(Role.agent, Role.evaluator, Role.auditor))


@router.post(
    "/messages",
    response_model=IngestRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=[INTEGRATION],
    summary="Ingest a customer message: store it, triage, draft, tone-check; returns the suggestions",
    responses={
        200: {
            "model": IngestRead,
            "description": "Already ingested (same idempotency key or channel message id): the first result",
        },
        **OVERLOADED_RESPONSE,
    },
)
async def ingest_message(
    body: MessageCreate,
    workflow: WorkflowDep,
    pipeline: MessagePipelineDep,
    principal: PrincipalDep,
    response: Response,
    work: LLMWorkDep,
) -> IngestRead:
    result = await work.run(workflow.ingest, body, principal, pipeline)
    if result.duplicate:
        response.status_code = status.HTTP_200_OK
    return result


@router.get(
    "/messages",
    response_model=list[MessageRead],
    dependencies=[READ_CUSTOMER_DATA],
    summary="List messages, e.g. `?direction=outbound&status=queued` for helpdesks that pull",
)
def list_messages(
    workflow: WorkflowDep,
    status_: Annotated[MessageStatus | None, Query(alias="status")] = None,
    direction: Direction | None = None,
    conversation_id: RowIdQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[MessageRead]:
    return workflow.list_messages(
        status=status_, direction=direction, conversation_id=conversation_id, limit=limit
    )


@router.get(
    "/messages/{message_id}",
    response_model=MessageRead,
    dependencies=[READ_CUSTOMER_DATA],
    summary="One message with its delivery or read state",
)
def get_message(message_id: RowId, workflow: WorkflowDep) -> MessageRead:
    return workflow.get_message(message_id)


@router.post(
    "/messages/{message_id}/status",
    response_model=StatusRead,
    dependencies=[INTEGRATION],
    summary="Channel receipt for an outbound message (sent, delivered, read, failed); never moves back",
)
def message_status(message_id: RowId, body: StatusReceipt, workflow: WorkflowDep) -> StatusRead:
    return workflow.apply_receipt(message_id, body)


@router.post(
    "/messages/{message_id}/read",
    response_model=MessageRead,
    dependencies=[AGENT],
    summary="An agent read this inbound message (and the earlier ones): emits `message.read` once",
)
def mark_read(message_id: RowId, workflow: WorkflowDep, principal: PrincipalDep) -> MessageRead:
    return workflow.mark_read(message_id, principal)


@router.get(
    "/suggestions",
    response_model=list[SuggestionRead],
    dependencies=[READ_THREADS],
    summary="Suggestions, newest first",
)
def list_suggestions(
    workflow: WorkflowDep,
    status_: Annotated[SuggestionStatus | None, Query(alias="status")] = None,
    conversation_id: RowIdQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[SuggestionRead]:
    return workflow.list_suggestions(status_, conversation_id, limit)


@router.get(
    "/suggestions/{suggestion_id}",
    response_model=SuggestionRead,
    dependencies=[READ_THREADS],
    summary="One suggestion with its decision",
)
def get_suggestion(suggestion_id: RowId, workflow: WorkflowDep) -> SuggestionRead:
    return workflow.get_suggestion(suggestion_id)


@router.post(
    "/suggestions/{suggestion_id}/approve",
    response_model=DecisionRead,
    dependencies=[AGENT],
    summary="Approve a suggestion, optionally edited (re-checked for tone), and send it",
)
def approve(
    suggestion_id: RowId, workflow: WorkflowDep, principal: PrincipalDep, body: ApproveRequest | None = None
) -> DecisionRead:
    return workflow.approve(suggestion_id, body or ApproveRequest(), principal)


@router.post(
    "/suggestions/{suggestion_id}/send",
    response_model=DecisionRead,
    dependencies=[AGENT],
    summary="Send an approved suggestion (idempotent: sending twice returns the same message)",
)
def send(suggestion_id: RowId, workflow: WorkflowDep, principal: PrincipalDep) -> DecisionRead:
    return workflow.send(suggestion_id, principal)


@router.post(
    "/suggestions/{suggestion_id}/reject",
    response_model=DecisionRead,
    dependencies=[AGENT],
    summary="Reject a suggestion with a reason",
)
def reject(
    suggestion_id: RowId, body: RejectRequest, workflow: WorkflowDep, principal: PrincipalDep
) -> DecisionRead:
    return workflow.reject(suggestion_id, body, principal)


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationDetail,
    dependencies=[READ_THREADS],
    summary="A conversation with its messages, suggestions, surveys and SLA state",
)
def get_conversation(conversation_id: RowId, workflow: WorkflowDep) -> ConversationDetail:
    return workflow.conversation(conversation_id)


@router.post(
    "/conversations/{conversation_id}/reply",
    response_model=DecisionRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=[AGENT],
    summary="Send the agent's own reply (no suggestion); tone-checked",
)
def reply(
    conversation_id: RowId, body: ReplyRequest, workflow: WorkflowDep, principal: PrincipalDep
) -> DecisionRead:
    return workflow.reply(conversation_id, body, principal)


@router.post(
    "/conversations/{conversation_id}/resolve",
    response_model=ResolveRead,
    dependencies=[AGENT_OR_INTEGRATION],
    summary="Resolve a conversation; queues the channel's CSAT or NPS survey unless switched off",
)
def resolve(
    conversation_id: RowId, workflow: WorkflowDep, principal: PrincipalDep, body: ResolveRequest | None = None
) -> ResolveRead:
    return workflow.resolve(conversation_id, body or ResolveRequest(), principal)


@router.post(
    "/surveys/{survey_id}/responses",
    response_model=SurveyRead,
    dependencies=[AGENT_OR_INTEGRATION],
    summary="Record a survey answer collected outside a message (button, form)",
)
def survey_response(survey_id: RowId, body: SurveyResponseCreate, workflow: WorkflowDep) -> SurveyRead:
    return workflow.answer_survey(survey_id, body.text)


@router.post(
    "/conversations/{conversation_id}/assign",
    response_model=ConversationRead,
    dependencies=[AGENT],
    summary="Assign (or claim: assign to your own key, or unassign) a conversation",
)
def assign(
    conversation_id: RowId, body: AssignUpdate, workflow: WorkflowDep, principal: PrincipalDep
) -> ConversationRead:
    return workflow.assign(conversation_id, body, principal)


@router.post(
    "/conversations/{conversation_id}/presence",
    response_model=PresenceRead,
    dependencies=[AGENT],
    summary="Say you have the conversation open (a heartbeat, every <30 s); returns who else has",
)
def presence(conversation_id: RowId, workflow: WorkflowDep, principal: PrincipalDep) -> PresenceRead:
    return workflow.touch_presence(conversation_id, principal)


@router.get(
    "/queue",
    response_model=QueueRead,
    dependencies=[READ_THREADS],
    summary="Open conversations, most at risk first (breached, at_risk, ok), then by urgency and due time",
)
def queue(
    workflow: WorkflowDep,
    principal: PrincipalDep,
    state: SlaState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    channel: Annotated[str | None, Query(max_length=20)] = None,
    urgency: UrgencyLevel | None = None,
    intent: Annotated[str | None, Query(max_length=64)] = None,
    language: Annotated[str | None, Query(max_length=16)] = None,
    assigned: Annotated[
        Literal["mine", "unassigned"] | None, Query(description="`mine` (your key) or `unassigned`.")
    ] = None,
) -> QueueRead:
    filters = QueueFilter(
        channel=channel,
        urgency=urgency,
        intent=intent,
        language=language,
        assigned_key_id=principal.key_id if assigned == "mine" else None,
        unassigned=assigned == "unassigned",
    )
    return workflow.queue(state=state, limit=limit, filters=filters)


@router.get(
    "/events",
    dependencies=[READ_CUSTOMER_DATA],
    response_class=EventSourceResponse,
    summary="Server-sent events: message, suggestion, SLA (at_risk, breached), survey events",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`id:` is the event id (resume with Last-Event-ID)",
        }
    },
)
async def events(
    request: Request,
    workflow: WorkflowDep,
    since: Annotated[int | None, Query(ge=0, le=MAX_ROW_ID, description="Start after this event id.")] = None,
    types: Annotated[str | None, Query(max_length=500, description="Comma-separated event types.")] = None,
    max_events: Annotated[int | None, Query(ge=1, le=100_000, description="Close after this many.")] = None,
    max_wait_s: Annotated[
        float | None, Query(gt=0, le=3600, description="Close after this long idle.")
    ] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    start = since
    if start is None and last_event_id:
        if not last_event_id.isascii() or not last_event_id.isdigit() or int(last_event_id) > MAX_ROW_ID:
            raise InvalidInput("Last-Event-ID must be an event id (0 … 2^63 - 1)")
        start = int(last_event_id)
    wanted = {t.strip() for t in types.split(",") if t.strip()} if types else None

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for batch in follow(
            workflow.events,
            start=start,
            types=wanted,
            poll_s=workflow.settings.events_poll_s,
            is_disconnected=request.is_disconnected,
            max_events=max_events,
            max_wait_s=max_wait_s,
        ):
            for ev in batch:
                yield ServerSentEvent(
                    data=json.dumps(ev.model_dump(mode="json"), ensure_ascii=False),
                    event=ev.type,
                    id=str(ev.id),
                )

    return EventSourceResponse(stream(), ping=15)


@router.get(
    "/metrics/kpis",
    response_model=KpiRead,
    response_model_by_alias=True,
    dependencies=[KPI_READERS],
    summary="Response/resolution times, SLA met %, CSAT, NPS and suggestion use, overall and per intent",
)
def kpis(
    workflow: WorkflowDep,
    from_: Annotated[
        datetime | None, Query(alias="from", description="ISO 8601; default: 30 days ago")
    ] = None,
    to: Annotated[datetime | None, Query(description="ISO 8601, exclusive; default: now")] = None,
) -> KpiRead:
    now = workflow.clock.now()
    end = _aware(to) if to else now
    start = _aware(from_) if from_ else end - timedelta(days=30)
    if start >= end:
        raise InvalidInput("`from` must be before `to`")
    return compute_kpis(workflow.db, start, end, now)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


metrics_router = APIRouter(tags=["metrics"])


@metrics_router.get(
    "/metrics",
    response_class=PlainTextResponse,
    dependencies=[EVALUATOR],
    summary="Prometheus metrics (scrape with an evaluator or admin key)",
)
def prometheus_metrics(workflow: WorkflowDep) -> PlainTextResponse:
    return PlainTextResponse(generate_latest(workflow.metrics.registry), media_type=CONTENT_TYPE_LATEST)
