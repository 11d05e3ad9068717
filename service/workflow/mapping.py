"""Rows → API schemas, and the lookups that answer 404 for an id that does not exist."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from service.db.models import Conversation, Customer, Message, SlaCycle, Suggestion, Survey
from service.db.rows import get_row
from service.errors import NotFound
from service.triage.models import UrgencyLevel
from service.workflow.models import (
    AssignmentRead,
    ConversationRead,
    ConversationStatus,
    CustomerRead,
    Direction,
    MessageKind,
    MessageRead,
    MessageStatus,
    SlaKind,
    SlaRead,
    SuggestionRead,
    SuggestionStatus,
    SurveyKind,
    SurveyRead,
)
from service.workflow.sla import SlaPolicy


def ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- lookups -------------------------------------------------------------------------------------------------


def conversation_or_404(s: Session, conversation_id: int) -> Conversation:
    conv = s.get(Conversation, conversation_id)
    if conv is None:
        raise NotFound(f"no conversation {conversation_id}")
    return conv


def suggestion_or_404(s: Session, suggestion_id: int) -> Suggestion:
    sug = s.get(Suggestion, suggestion_id)
    if sug is None:
        raise NotFound(f"no suggestion {suggestion_id}")
    return sug


def message_or_404(s: Session, message_id: int) -> Message:
    msg = s.get(Message, message_id)
    if msg is None:
        raise NotFound(f"no message {message_id}")
    return msg


# -- reads ---------------------------------------------------------------------------------------------------


def sla_read(sla: SlaPolicy, cycle: SlaCycle, now: datetime) -> SlaRead:
    kind, urgency = SlaKind(cycle.kind), UrgencyLevel(cycle.urgency)
    return SlaRead(
        kind=kind,
        urgency=urgency,
        state=SlaPolicy.state(cycle.at_risk_at, cycle.due_at, now),
        started_at=cycle.started_at,
        at_risk_at=cycle.at_risk_at,
        due_at=cycle.due_at,
        elapsed_ratio=sla.elapsed_ratio(kind, urgency, cycle.started_at, now),
    )


def assignment_read(conv: Conversation) -> AssignmentRead | None:
    if conv.assigned_key_id is None or conv.assigned_to is None or conv.assigned_at is None:
        return None
    return AssignmentRead(agent=conv.assigned_to, key_id=conv.assigned_key_id, at=conv.assigned_at)


def conversation_read(s: Session, sla: SlaPolicy, conv: Conversation, now: datetime) -> ConversationRead:
    customer = get_row(s, Customer, conv.customer_id)
    cycle = s.get(SlaCycle, conv.current_sla_id) if conv.current_sla_id else None
    return ConversationRead(
        id=conv.id,
        channel=conv.channel,
        external_id=conv.external_id,
        status=ConversationStatus(conv.status),
        urgency=UrgencyLevel(conv.urgency),
        intent=conv.intent,
        language=conv.language,
        customer=CustomerRead(
            id=customer.id,
            external_id=customer.external_id,
            name=customer.name,
            locale=customer.locale,
            country=customer.country,
        ),
        created_at=conv.created_at,
        updated_at=conv.updated_at,
        first_response_at=conv.first_response_at,
        last_customer_message_at=conv.last_customer_message_at,
        resolved_at=conv.resolved_at,
        sla=sla_read(sla, cycle, now) if cycle and cycle.responded_at is None else None,
        assignment=assignment_read(conv),
    )


def message_read(m: Message) -> MessageRead:
    return MessageRead(
        id=m.id,
        conversation_id=m.conversation_id,
        channel=m.channel,
        direction=Direction(m.direction),
        kind=MessageKind(m.kind),
        status=MessageStatus(m.status),
        text=m.text,
        attachments=m.attachments or [],
        channel_message_id=m.channel_message_id,
        author=m.author,
        created_at=m.created_at,
        customer_sent_at=m.customer_sent_at,
        sent_at=m.sent_at,
        delivered_at=m.delivered_at,
        read_at=m.read_at,
        failed_at=m.failed_at,
        error=m.error,
        error_code=m.error_code,
        reply_to=m.reply_to,
        agent_read_at=m.agent_read_at,
        suggestion_id=m.suggestion_id,
    )


def suggestion_read(x: Suggestion) -> SuggestionRead:
    details = x.details or {}
    return SuggestionRead(
        id=x.id,
        conversation_id=x.conversation_id,
        message_id=x.message_id,
        rank=x.rank,
        status=SuggestionStatus(x.status),
        decision=SuggestionStatus(x.decision) if x.decision else None,
        draft_text=x.draft_text,
        final_text=x.final_text,
        intent=x.intent,
        intent_confidence=x.intent_confidence,
        language=x.language,
        generator=x.generator,
        cited_article_ids=details.get("cited_article_ids", []),
        draft_tone_findings=details.get("tone_findings", []),
        draft_safety_findings=details.get("safety_findings", []),
        created_at=x.created_at,
        decided_at=x.decided_at,
        decided_by=x.decided_by,
        edit_distance=x.edit_distance,
        reject_reason=x.reject_reason,
        tone_findings=x.tone_findings,
        tone_override_reason=x.tone_override_reason,
        sent_at=x.sent_at,
        outbound_message_id=x.outbound_message_id,
    )


def survey_read(x: Survey) -> SurveyRead:
    return SurveyRead(
        id=x.id,
        conversation_id=x.conversation_id,
        kind=SurveyKind(x.kind),
        locale=x.locale,
        status=x.status,
        score=x.score,
        comment=x.comment,
        message_id=x.message_id,
        created_at=x.created_at,
        expires_at=x.expires_at,
        answered_at=x.answered_at,
    )
