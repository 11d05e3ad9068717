"""The survey use case: a CSAT/NPS question queued when a conversation is resolved, the customer's next
message taken as the answer (or a comment), and answers collected outside a message. Parsing lives in
`surveys`."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.auth.models import Principal
from service.db.models import Conversation, Customer, Message, Survey
from service.db.rows import get_row
from service.errors import Conflict, InvalidInput, NotFound
from service.workflow.context import WorkflowContext
from service.workflow.mapping import survey_read
from service.workflow.models import MessageKind, PipelineStatus, SurveyChoice, SurveyKind, SurveyRead
from service.workflow.outbound import queue_outbound
from service.workflow.surveys import language_of, parse_answer, question


def survey_kind(ctx: WorkflowContext, channel: str, requested: SurveyChoice | None) -> SurveyKind | None:
    """The survey to send when a conversation on `channel` is resolved (None: no survey)."""
    settings = ctx.settings
    if not settings.surveys_enabled:
        return None
    choice = (
        requested.value
        if requested
        else settings.survey_by_channel.get(channel, settings.survey_by_channel.get("default", "off"))
    )
    if choice not in ("csat", "nps"):
        if choice != "off":
            raise InvalidInput(f"survey setting {choice!r} for channel {channel!r} is not csat, nps or off")
        return None
    return SurveyKind(choice)


def survey_key(conv: Conversation) -> str:
    """One survey per resolution: the conversation and the moment it was (re)opened."""
    opened = conv.opened_at or conv.created_at
    return f"survey:{conv.id}:{opened.isoformat()}"


def queue_survey(
    ctx: WorkflowContext,
    s: Session,
    conv: Conversation,
    kind: SurveyKind,
    now: datetime,
    principal: Principal | None,
) -> tuple[Survey, Message]:
    """Queue the survey question of this resolution, exactly once: the survey row is INSERTed first with
    `ON CONFLICT (dedupe_key) DO NOTHING` (PostgreSQL and SQLite alike); when another process queued this
    resolution's survey already, nothing more is written here and that survey and its question are returned.
    Only the winner queues the question to the customer. (On PostgreSQL a conflicting insert still in flight
    elsewhere makes this one wait for its commit, then do nothing.)"""
    customer = get_row(s, Customer, conv.customer_id)
    locale = language_of(customer.locale or conv.language, ctx.settings.default_locale)
    key = survey_key(conv)
    values = {
        "conversation_id": conv.id,
        "kind": kind.value,
        "locale": locale,
        "status": "sent",
        "intent": conv.intent,
        "created_at": now,
        "expires_at": now + timedelta(hours=ctx.settings.survey_window_hours),
        "dedupe_key": key,
    }
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    inserted = s.scalar(
        insert(Survey)
        .values(values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Survey.id)
    )
    if inserted is None:  # this resolution's survey exists: another process queued it
        existing = s.scalars(select(Survey).where(Survey.dedupe_key == key)).one()
        if existing.message_id is None:
            raise LookupError(f"survey {existing.id} has no question message")
        return existing, get_row(s, Message, existing.message_id)
    survey = get_row(s, Survey, inserted)
    msg = queue_outbound(ctx, s, conv, question(kind, locale), MessageKind.survey, principal, None, now)
    survey.message_id = msg.id
    s.flush()
    return survey, msg


def open_survey(s: Session, conversation_id: int, now: datetime) -> Survey | None:
    return s.scalars(
        select(Survey)
        .where(Survey.conversation_id == conversation_id, Survey.status == "sent", Survey.expires_at > now)
        .order_by(Survey.id.desc())
        .limit(1)
    ).first()


def take_survey_answer(ctx: WorkflowContext, s: Session, survey: Survey, msg: Message, now: datetime) -> bool:
    """Store the answer; True when it was a score (the message is then only a survey reply)."""
    parsed = parse_answer(msg.text, SurveyKind(survey.kind))
    ctx.metrics.survey_answers.labels(survey.kind, str(parsed.score is not None).lower()).inc()
    survey.reply_message_id = msg.id
    survey.answered_at = now
    if parsed.score is None:
        survey.status = "commented"
        survey.comment = msg.text or None
        ctx.events.emit(
            s,
            "survey.commented",
            {"survey_id": survey.id, "comment": survey.comment},
            now=now,
            conversation_id=survey.conversation_id,
            message_id=msg.id,
        )
        return False
    survey.status = "answered"
    survey.score = parsed.score
    survey.comment = parsed.comment
    msg.kind = MessageKind.survey_reply.value
    msg.pipeline_status = PipelineStatus.skipped.value
    ctx.events.emit(
        s,
        "survey.answered",
        {
            "survey_id": survey.id,
            "kind": survey.kind,
            "score": parsed.score,
            "comment": parsed.comment,
            "method": parsed.method,
        },
        now=now,
        conversation_id=survey.conversation_id,
        message_id=msg.id,
    )
    return True


def answer_survey(ctx: WorkflowContext, survey_id: int, text: str) -> SurveyRead:
    """An answer collected outside a message (a button, a form)."""
    now = ctx.clock.now()
    with ctx.db.session() as s:
        survey = s.get(Survey, survey_id)
        if survey is None:
            raise NotFound(f"no survey {survey_id}")
        if survey.status == "answered":
            raise Conflict(f"survey {survey_id} is already answered", details={"score": survey.score})
        parsed = parse_answer(text, SurveyKind(survey.kind))
        survey.answered_at = now
        if parsed.score is None:
            survey.status, survey.comment = "commented", text
        else:
            survey.status, survey.score, survey.comment = "answered", parsed.score, parsed.comment
        ctx.events.emit(
            s,
            f"survey.{survey.status}",
            {"survey_id": survey.id, "score": survey.score, "comment": survey.comment},
            now=now,
            conversation_id=survey.conversation_id,
        )
        return survey_read(survey)
