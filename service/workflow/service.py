"""The agent workflow: ingest → suggestions → decisions → outbound → receipts, with SLA cycles, surveys and events.

Every state change is a conditional UPDATE (`... WHERE status = <expected>`), so two agents or two retries racing on
the same suggestion or message cannot both win, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from rapidfuzz.distance import Levenshtein
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.auth.models import Principal
from service.db import Database
from service.db.models import (
    Conversation,
    Customer,
    Event,
    Message,
    SlaCycle,
    Suggestion,
    Survey,
    WebhookDelivery,
)
from service.errors import Conflict, InvalidInput, NotFound, ReplyDeskError
from service.integrations.webhooks import WebhookDispatcher
from service.settings import Settings
from service.triage.models import HistoryMessage, TriageRead, TriageRequest, UrgencyLevel
from service.workflow.clock import Clock, ensure_utc
from service.workflow.events import EventLog
from service.workflow.metrics import WorkflowMetrics
from service.workflow.models import (
    ApproveRequest,
    ContextFact,
    ConversationDetail,
    ConversationRead,
    ConversationStatus,
    CustomerRead,
    DecisionRead,
    Direction,
    IngestRead,
    MessageCreate,
    MessageKind,
    MessageRead,
    MessageStatus,
    PipelineRead,
    PipelineStatus,
    QueueItem,
    QueueRead,
    RejectRequest,
    ReplyRequest,
    ResolveRead,
    ResolveRequest,
    SlaKind,
    SlaRead,
    SlaState,
    StatusRead,
    StatusReceipt,
    SuggestionRead,
    SuggestionStatus,
    SurveyChoice,
    SurveyKind,
    SurveyRead,
    ToneReport,
)
from service.workflow.sla import STATE_RANK, URGENCY_RANK, SlaPolicy
from service.workflow.surveys import language_of, parse_answer, question

log = logging.getLogger("replydesk.workflow")

Pipeline = Callable[..., Any]
ToneCheck = Callable[[str, str | None, dict[str, Any]], Any]
FactsLookup = Callable[[str, str | None], list[ContextFact]]

STATUS_RANK = {
    MessageStatus.queued: 0,
    MessageStatus.sent: 1,
    MessageStatus.delivered: 2,
    MessageStatus.read: 3,
}
MAX_RETRIES = 3
STALE_PIPELINE = timedelta(seconds=30)


class ToneBlocked(Conflict):
    """The reply has `block` tone findings and no override reason was given."""

    code = "tone_blocked"


@dataclass
class _Stored:
    message_id: int
    conversation_id: int
    duplicate: bool
    run_pipeline: bool


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class Workflow:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        *,
        pipeline: Pipeline,
        tone_check: ToneCheck | None = None,
        facts: FactsLookup | None = None,
        metrics: WorkflowMetrics | None = None,
        dispatcher: WebhookDispatcher | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.pipeline = pipeline
        self.tone_check = tone_check
        self.facts = facts
        self.metrics = metrics or WorkflowMetrics()
        self.sla = SlaPolicy.from_settings(settings)
        self.events = EventLog(db, settings.webhook_url)
        self.events.on_emit.append(lambda t: self.metrics.events.labels(t).inc())
        self.dispatcher = dispatcher or WebhookDispatcher(
            db,
            clock,
            secret=settings.webhook_secret,
            max_attempts=settings.webhook_max_attempts,
            backoff_s=settings.webhook_backoff_s,
            backoff_max_s=settings.webhook_backoff_max_s,
            timeout_s=settings.webhook_timeout_s,
        )
        self.dispatcher.on_delivered["message.outbound"] = self._outbound_delivered
        self.dispatcher.on_failed["message.outbound"] = self._outbound_failed
        self.after_suggestions: list[Callable[[IngestRead], None]] = []  # e.g. post to Chatwoot
        self.metrics.watch(self.snapshot)

    # ------------------------------------------------------------------------------------------------------------
    # ingest

    def ingest(
        self, req: MessageCreate, principal: Principal | None = None, pipeline: Pipeline | None = None
    ) -> IngestRead:
        stored = self._store_inbound(req)
        if stored.duplicate:
            self.metrics.duplicates.inc()
        else:
            self.metrics.messages.labels(req.channel.value).inc()
        if stored.run_pipeline:
            self._run_pipeline(stored.message_id, pipeline or self.pipeline)
        result = self.ingest_result(stored.message_id, duplicate=stored.duplicate)
        if stored.run_pipeline and result.suggestions:
            for hook in self.after_suggestions:
                hook(result)
        return result

    def _find_duplicate(self, s: Session, req: MessageCreate) -> Message | None:
        conds = []
        if req.idempotency_key:
            conds.append(Message.idempotency_key == req.idempotency_key)
        if req.channel_message_id:
            conds.append(
                (Message.channel == req.channel.value)
                & (Message.channel_message_id == req.channel_message_id)
            )
        if not conds:
            return None
        return s.scalars(select(Message).where(or_(*conds)).order_by(Message.id).limit(1)).first()

    def _store_inbound(self, req: MessageCreate) -> _Stored:
        for attempt in range(MAX_RETRIES):
            try:
                with self.db.session() as s:
                    dup = self._find_duplicate(s, req)
                    if dup is not None:
                        # A failed pipeline (or one that never finished: the process or database died mid-way)
                        # is retried when the helpdesk re-sends the message.
                        stale = self.clock.now() - dup.created_at > STALE_PIPELINE
                        rerun = dup.pipeline_status == PipelineStatus.failed.value or (
                            dup.pipeline_status == PipelineStatus.pending.value and stale
                        )
                        return _Stored(dup.id, dup.conversation_id, True, run_pipeline=rerun)
                    return self._insert_inbound(s, req)
            except IntegrityError:
                # A concurrent request created the same customer, conversation or message: look again.
                if attempt == MAX_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _insert_inbound(self, s: Session, req: MessageCreate) -> _Stored:
        now = self.clock.now()
        ch = req.channel.value
        customer = s.scalars(
            select(Customer).where(Customer.channel == ch, Customer.external_id == req.customer.id)
        ).one_or_none()
        if customer is None:
            customer = Customer(channel=ch, external_id=req.customer.id, created_at=now)
            s.add(customer)
        for field in ("name", "locale", "country"):
            value = getattr(req.customer, field)
            if value:
                setattr(customer, field, value)
        s.flush()
        conv = s.scalars(
            select(Conversation).where(
                Conversation.channel == ch, Conversation.external_id == req.conversation_external_id
            )
        ).one_or_none()
        if conv is None:
            conv = Conversation(
                channel=ch,
                external_id=req.conversation_external_id,
                customer_id=customer.id,
                status=ConversationStatus.open.value,
                urgency=UrgencyLevel.normal.value,
                created_at=now,
                updated_at=now,
                opened_at=now,
                extra={},
            )
            s.add(conv)
            s.flush()
        msg = Message(
            conversation_id=conv.id,
            channel=ch,
            direction=Direction.inbound.value,
            kind=MessageKind.customer.value,
            channel_message_id=req.channel_message_id,
            idempotency_key=req.idempotency_key,
            text=req.text,
            attachments=[a.model_dump() for a in req.attachments],
            status=MessageStatus.received.value,
            created_at=now,
            customer_sent_at=ensure_utc(req.sent_at),
            pipeline_status=PipelineStatus.pending.value,
        )
        s.add(msg)
        s.flush()
        self.events.emit(
            s,
            "message.received",
            {"message": self._message_read(msg).model_dump(mode="json")},
            now=now,
            conversation_id=conv.id,
            message_id=msg.id,
        )

        survey = self._open_survey(s, conv.id, now)
        if survey is not None and self._take_survey_answer(s, survey, msg, now):
            return _Stored(msg.id, conv.id, False, run_pipeline=False)

        if conv.status == ConversationStatus.resolved.value:
            conv.status = ConversationStatus.open.value
            conv.resolved_at = None
            conv.resolved_by = None
            conv.opened_at = now
            self.events.emit(
                s,
                "conversation.reopened",
                {"conversation_id": conv.id},
                now=now,
                conversation_id=conv.id,
                message_id=msg.id,
            )
        conv.updated_at = now
        conv.last_customer_message_at = now
        if conv.first_customer_message_at is None:
            conv.first_customer_message_at = now
        if conv.current_sla_id is None:
            kind = SlaKind.first_response if conv.first_response_at is None else SlaKind.next_response
            self._start_cycle(s, conv, kind, UrgencyLevel(conv.urgency), now, msg.id)
        if not self._triage_text(msg):
            msg.pipeline_status = PipelineStatus.skipped.value
            msg.pipeline_error = "no text to triage (attachments only)"
            return _Stored(msg.id, conv.id, False, run_pipeline=False)
        return _Stored(msg.id, conv.id, False, run_pipeline=True)

    def _start_cycle(
        self,
        s: Session,
        conv: Conversation,
        kind: SlaKind,
        urgency: UrgencyLevel,
        started: datetime,
        message_id: int,
    ) -> SlaCycle:
        at_risk, due = self.sla.schedule(kind, urgency, started)
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

    @staticmethod
    def _triage_text(msg: Message) -> str:
        if msg.text:
            return msg.text
        captions = [a.get("caption") for a in msg.attachments or [] if a.get("caption")]
        return " ".join(captions)

    def _history(self, s: Session, msg: Message) -> list[HistoryMessage]:
        n = self.settings.history_messages
        if n == 0:
            return []
        rows = list(
            s.scalars(
                select(Message)
                .where(
                    Message.conversation_id == msg.conversation_id, Message.id < msg.id, Message.text != ""
                )
                .order_by(Message.id.desc())
                .limit(n)
            )
        )
        out = []
        for m in reversed(rows):
            role = "customer" if m.direction == Direction.inbound.value else "agent"
            out.append(
                HistoryMessage(role=role, text=m.text[:4000], sent_at=_ts(m.customer_sent_at or m.created_at))
            )
        return out

    def _run_pipeline(self, message_id: int, pipeline: Pipeline) -> None:
        with self.db.session() as s:
            msg = s.get(Message, message_id)
            conv = s.get(Conversation, msg.conversation_id)
            customer = s.get(Customer, conv.customer_id)
            text = self._triage_text(msg)
            locale = customer.locale
            history = self._history(s, msg)
            channel = conv.channel
        facts: list[ContextFact] = []
        if self.facts is not None:
            facts = self.facts(text, locale)
        started = time.perf_counter()
        error: str | None = None
        result: Any = None
        try:
            request = TriageRequest(text=text, locale=locale, channel=channel, history=history)
            result = _call_pipeline(pipeline, request, facts)
        except ValidationError as exc:
            error = f"invalid_input: {exc.errors()[0].get('msg', 'invalid')}"
            self.metrics.pipeline_failures.labels("invalid_input").inc()
        except ReplyDeskError as exc:
            error = f"{exc.code}: {exc.message}"
            self.metrics.pipeline_failures.labels(exc.code).inc()
            log.warning("pipeline failed", extra={"message_id": message_id, "error": error})
        finally:
            self.metrics.pipeline_seconds.observe(time.perf_counter() - started)
        self._store_pipeline(message_id, result, facts, error)

    def _store_pipeline(
        self, message_id: int, result: Any, facts: list[ContextFact], error: str | None
    ) -> None:
        now = self.clock.now()
        with self.db.session() as s:
            msg = s.get(Message, message_id)
            conv = s.get(Conversation, msg.conversation_id)
            if error is not None or result is None:
                s.execute(
                    update(Message)
                    .where(Message.id == message_id, Message.pipeline_status != PipelineStatus.done.value)
                    .values(
                        pipeline_status=PipelineStatus.failed.value,
                        pipeline_error=error or "pipeline returned nothing",
                        facts=[f.model_dump(mode="json") for f in facts],
                    )
                )
                return
            # Claim the result: a concurrent re-run of the same message stores nothing twice.
            claimed = s.execute(
                update(Message)
                .where(Message.id == message_id, Message.pipeline_status != PipelineStatus.done.value)
                .values(pipeline_status=PipelineStatus.done.value, pipeline_error=None)
            )
            if claimed.rowcount != 1:
                return
            s.refresh(msg)
            msg.facts = [f.model_dump(mode="json") for f in facts]
            triage = TriageRead.model_validate(result, from_attributes=True)
            msg.triage = (
                result.model_dump(mode="json")
                if hasattr(result, "model_dump")
                else triage.model_dump(mode="json")
            )
            conv.intent = triage.intent.name
            conv.language = triage.language.code
            conv.updated_at = now
            new_urgency = triage.urgency.level
            cycle = s.get(SlaCycle, conv.current_sla_id) if conv.current_sla_id else None
            if cycle is not None and cycle.responded_at is None:
                if cycle.message_id == msg.id:
                    conv.urgency = new_urgency.value  # the message that opened the wait sets its urgency
                elif URGENCY_RANK[new_urgency] < URGENCY_RANK[UrgencyLevel(conv.urgency)]:
                    conv.urgency = new_urgency.value  # a later, more urgent message tightens the wait
                if cycle.urgency != conv.urgency:
                    at_risk, due = self.sla.schedule(
                        SlaKind(cycle.kind), UrgencyLevel(conv.urgency), cycle.started_at
                    )
                    cycle.urgency, cycle.at_risk_at, cycle.due_at = conv.urgency, at_risk, due
            elif URGENCY_RANK[new_urgency] < URGENCY_RANK[UrgencyLevel(conv.urgency)]:
                conv.urgency = new_urgency.value
            drafts = _drafts_of(result)
            for rank, draft in enumerate(drafts, start=1):
                text = str(_get(draft, "text", "")).strip()
                if not text:
                    continue
                findings = [_dump(f) for f in (_get(draft, "tone_findings", None) or [])]
                s.add(
                    Suggestion(
                        conversation_id=conv.id,
                        message_id=msg.id,
                        rank=rank,
                        draft_text=text,
                        status=SuggestionStatus.pending.value,
                        intent=triage.intent.name,
                        intent_confidence=triage.intent.confidence,
                        language=_drafts_language(result) or triage.language.code,
                        generator=str(_get(draft, "generator", "") or "") or None,
                        details={
                            "cited_article_ids": list(_get(draft, "cited_article_ids", None) or []),
                            "tone_findings": findings,
                        },
                        created_at=now,
                    )
                )
                self.metrics.suggestions.inc()
            s.flush()
            self.events.emit(
                s,
                "suggestions.created",
                {
                    "message_id": msg.id,
                    "count": len(drafts),
                    "intent": triage.intent.name,
                    "urgency": triage.urgency.level.value,
                },
                now=now,
                conversation_id=conv.id,
                message_id=msg.id,
            )

    def ingest_result(self, message_id: int, *, duplicate: bool) -> IngestRead:
        now = self.clock.now()
        with self.db.session() as s:
            msg = s.get(Message, message_id)
            if msg is None:
                raise NotFound(f"no message {message_id}")
            conv = s.get(Conversation, msg.conversation_id)
            suggestions = list(
                s.scalars(select(Suggestion).where(Suggestion.message_id == msg.id).order_by(Suggestion.rank))
            )
            survey_id = s.scalars(select(Survey.id).where(Survey.reply_message_id == msg.id)).first()
            triage = TriageRead.model_validate(msg.triage) if msg.triage else None
            return IngestRead(
                duplicate=duplicate,
                conversation=self._conversation_read(s, conv, now),
                message=self._message_read(msg),
                triage=triage,
                suggestions=[self._suggestion_read(x) for x in suggestions],
                facts=[ContextFact.model_validate(f) for f in msg.facts or []],
                pipeline=PipelineRead(
                    status=PipelineStatus(msg.pipeline_status or "skipped"), error=msg.pipeline_error
                ),
                survey_id=survey_id,
            )

    # ------------------------------------------------------------------------------------------------------------
    # surveys

    def _open_survey(self, s: Session, conversation_id: int, now: datetime) -> Survey | None:
        return s.scalars(
            select(Survey)
            .where(
                Survey.conversation_id == conversation_id, Survey.status == "sent", Survey.expires_at > now
            )
            .order_by(Survey.id.desc())
            .limit(1)
        ).first()

    def _take_survey_answer(self, s: Session, survey: Survey, msg: Message, now: datetime) -> bool:
        """Store the answer; True when it was a score (the message is then only a survey reply)."""
        parsed = parse_answer(msg.text, SurveyKind(survey.kind))
        self.metrics.survey_answers.labels(survey.kind, str(parsed.score is not None).lower()).inc()
        survey.reply_message_id = msg.id
        survey.answered_at = now
        if parsed.score is None:
            survey.status = "commented"
            survey.comment = msg.text or None
            self.events.emit(
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
        self.events.emit(
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

    def answer_survey(self, survey_id: int, text: str) -> SurveyRead:
        """An answer collected outside a message (a button, a form)."""
        now = self.clock.now()
        with self.db.session() as s:
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
            self.events.emit(
                s,
                f"survey.{survey.status}",
                {"survey_id": survey.id, "score": survey.score, "comment": survey.comment},
                now=now,
                conversation_id=survey.conversation_id,
            )
            return _survey_read(survey)

    def _queue_survey(
        self, s: Session, conv: Conversation, kind: SurveyKind, now: datetime, principal: Principal | None
    ) -> tuple[Survey, Message]:
        customer = s.get(Customer, conv.customer_id)
        locale = language_of(customer.locale or conv.language, self.settings.default_locale)
        msg = self._queue_outbound(s, conv, question(kind, locale), MessageKind.survey, principal, None, now)
        survey = Survey(
            conversation_id=conv.id,
            kind=kind.value,
            locale=locale,
            message_id=msg.id,
            status="sent",
            intent=conv.intent,
            created_at=now,
            expires_at=now + timedelta(hours=self.settings.survey_window_hours),
        )
        s.add(survey)
        s.flush()
        return survey, msg

    # ------------------------------------------------------------------------------------------------------------
    # suggestions and decisions

    def list_suggestions(
        self, status: SuggestionStatus | None, conversation_id: int | None, limit: int
    ) -> list[SuggestionRead]:
        with self.db.session() as s:
            q = select(Suggestion).order_by(Suggestion.id.desc()).limit(limit)
            if status:
                q = q.where(Suggestion.status == status.value)
            if conversation_id is not None:
                q = q.where(Suggestion.conversation_id == conversation_id)
            return [self._suggestion_read(x) for x in s.scalars(q)]

    def get_suggestion(self, suggestion_id: int) -> SuggestionRead:
        with self.db.session() as s:
            return self._suggestion_read(self._suggestion(s, suggestion_id))

    @staticmethod
    def _suggestion(s: Session, suggestion_id: int) -> Suggestion:
        sug = s.get(Suggestion, suggestion_id)
        if sug is None:
            raise NotFound(f"no suggestion {suggestion_id}")
        return sug

    def _tone_context(
        self, s: Session, conv: Conversation, message_id: int | None
    ) -> tuple[str | None, dict]:
        customer = s.get(Customer, conv.customer_id)
        locale = customer.locale or conv.language
        context: dict[str, Any] = {"intent": conv.intent, "urgency": conv.urgency}
        msg = s.get(Message, message_id) if message_id else None
        if msg is None:
            msg = s.scalars(
                select(Message)
                .where(
                    Message.conversation_id == conv.id,
                    Message.direction == Direction.inbound.value,
                    Message.triage.is_not(None),
                )
                .order_by(Message.id.desc())
                .limit(1)
            ).first()
        if msg is not None and msg.triage:
            context["sentiment"] = (msg.triage.get("sentiment") or {}).get("label")
            context["intent"] = (msg.triage.get("intent") or {}).get("name", context["intent"])
        return locale, context

    def _check_tone(
        self, text: str, locale: str | None, context: dict, override: str | None
    ) -> ToneReport | None:
        if self.tone_check is None:
            return None
        result = self.tone_check(text, locale, context)
        findings = [_dump(f) for f in getattr(result, "findings", [])]
        blocks = [f for f in findings if str(f.get("severity")) == "block"]
        if blocks and not override:
            raise ToneBlocked(
                "the reply has tone findings that block sending; fix the text or approve with an "
                "`override_reason`",
                details={"findings": findings},
            )
        return ToneReport(ok=not blocks, findings=findings, overridden=bool(blocks))

    def approve(self, suggestion_id: int, req: ApproveRequest, principal: Principal) -> DecisionRead:
        with self.db.session() as s:
            sug = self._suggestion(s, suggestion_id)
            if sug.status != SuggestionStatus.pending.value:
                raise Conflict(
                    f"suggestion {suggestion_id} is {sug.status}; only pending suggestions can be approved",
                    details={"status": sug.status},
                )
            conv = s.get(Conversation, sug.conversation_id)
            locale, context = self._tone_context(s, conv, sug.message_id)
            draft = sug.draft_text
        final = req.text if req.text is not None else draft
        edited = final != draft
        tone = self._check_tone(final, locale, context, req.override_reason)
        now = self.clock.now()
        decision = SuggestionStatus.edited if edited else SuggestionStatus.approved
        with self.db.session() as s:
            res = s.execute(
                update(Suggestion)
                .where(Suggestion.id == suggestion_id, Suggestion.status == SuggestionStatus.pending.value)
                .values(
                    status=decision.value,
                    decision=decision.value,
                    final_text=final,
                    decided_at=now,
                    decided_by=principal.name,
                    decided_by_key_id=principal.key_id,
                    edit_distance=Levenshtein.distance(draft, final),
                    tone_findings=tone.findings if tone else None,
                    tone_override_reason=req.override_reason if tone and tone.overridden else None,
                )
            )
            if res.rowcount != 1:
                raise Conflict(f"suggestion {suggestion_id} was decided by someone else meanwhile")
            self.events.emit(
                s,
                f"suggestion.{decision.value}",
                {"suggestion_id": suggestion_id, "by": principal.name},
                now=now,
                conversation_id=conv.id,
            )
        self.metrics.decisions.labels(decision.value).inc()
        if req.send:
            out = self.send(suggestion_id, principal)
            out.tone = tone
            return out
        return DecisionRead(suggestion=self.get_suggestion(suggestion_id), tone=tone)

    def send(self, suggestion_id: int, principal: Principal) -> DecisionRead:
        """Queue the approved/edited text as an outbound message. Sending again returns the same message."""
        now = self.clock.now()
        with self.db.session() as s:
            sug = self._suggestion(s, suggestion_id)
            if sug.status == SuggestionStatus.sent.value:
                out = s.get(Message, sug.outbound_message_id)
                return DecisionRead(suggestion=self._suggestion_read(sug), message=self._message_read(out))
            if sug.status not in (SuggestionStatus.approved.value, SuggestionStatus.edited.value):
                raise Conflict(
                    f"suggestion {suggestion_id} is {sug.status}; only approved or edited suggestions "
                    "can be sent",
                    details={"status": sug.status},
                )
            res = s.execute(
                update(Suggestion)
                .where(
                    Suggestion.id == suggestion_id,
                    Suggestion.status.in_([SuggestionStatus.approved.value, SuggestionStatus.edited.value]),
                )
                .values(status=SuggestionStatus.sent.value, sent_at=now)
            )
            if res.rowcount != 1:
                raise Conflict(f"suggestion {suggestion_id} was sent by someone else meanwhile")
            conv = s.get(Conversation, sug.conversation_id)
            out = self._queue_outbound(
                s, conv, sug.final_text or sug.draft_text, MessageKind.reply, principal, sug.id, now
            )
            sug.outbound_message_id = out.id
            self._supersede(s, conv.id, up_to_message_id=sug.message_id, keep=sug.id)
            s.flush()
            return DecisionRead(suggestion=self._suggestion_read(sug), message=self._message_read(out))

    def reject(self, suggestion_id: int, req: RejectRequest, principal: Principal) -> DecisionRead:
        now = self.clock.now()
        with self.db.session() as s:
            sug = self._suggestion(s, suggestion_id)
            res = s.execute(
                update(Suggestion)
                .where(Suggestion.id == suggestion_id, Suggestion.status == SuggestionStatus.pending.value)
                .values(
                    status=SuggestionStatus.rejected.value,
                    decision=SuggestionStatus.rejected.value,
                    reject_reason=req.reason,
                    decided_at=now,
                    decided_by=principal.name,
                    decided_by_key_id=principal.key_id,
                )
            )
            if res.rowcount != 1:
                raise Conflict(
                    f"suggestion {suggestion_id} is {sug.status}; only pending suggestions can be rejected",
                    details={"status": sug.status},
                )
            self.events.emit(
                s,
                "suggestion.rejected",
                {"suggestion_id": suggestion_id, "reason": req.reason, "by": principal.name},
                now=now,
                conversation_id=sug.conversation_id,
            )
            s.refresh(sug)
            self.metrics.decisions.labels("rejected").inc()
            return DecisionRead(suggestion=self._suggestion_read(sug))

    def reply(self, conversation_id: int, req: ReplyRequest, principal: Principal) -> DecisionRead:
        with self.db.session() as s:
            conv = self._conversation(s, conversation_id)
            locale, context = self._tone_context(s, conv, None)
        tone = self._check_tone(req.text, locale, context, req.override_reason)
        now = self.clock.now()
        with self.db.session() as s:
            conv = self._conversation(s, conversation_id)
            out = self._queue_outbound(s, conv, req.text, MessageKind.reply, principal, None, now)
            self._supersede(s, conv.id, up_to_message_id=None, keep=None)
            return DecisionRead(message=self._message_read(out), tone=tone)

    def _supersede(
        self, s: Session, conversation_id: int, *, up_to_message_id: int | None, keep: int | None
    ) -> None:
        q = update(Suggestion).where(
            Suggestion.conversation_id == conversation_id, Suggestion.status == SuggestionStatus.pending.value
        )
        if up_to_message_id is not None:
            q = q.where(Suggestion.message_id <= up_to_message_id)
        if keep is not None:
            q = q.where(Suggestion.id != keep)
        s.execute(q.values(status=SuggestionStatus.superseded.value))

    def _queue_outbound(
        self,
        s: Session,
        conv: Conversation,
        text: str,
        kind: MessageKind,
        principal: Principal | None,
        suggestion_id: int | None,
        now: datetime,
    ) -> Message:
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
        customer = s.get(Customer, conv.customer_id)
        self.events.emit(
            s,
            "message.outbound",
            {
                "message": self._message_read(msg).model_dump(mode="json"),
                "conversation": {"id": conv.id, "channel": conv.channel, "external_id": conv.external_id},
                "customer": {"id": customer.external_id, "name": customer.name, "locale": customer.locale},
            },
            now=now,
            conversation_id=conv.id,
            message_id=msg.id,
        )
        self.metrics.outbound.labels(kind.value).inc()
        conv.updated_at = now
        if kind is MessageKind.reply:
            conv.last_agent_message_at = now
            if conv.first_response_at is None:
                conv.first_response_at = now
            self._close_cycle(s, conv, now, "reply")
        return msg

    def _close_cycle(self, s: Session, conv: Conversation, now: datetime, by: str) -> None:
        if conv.current_sla_id is not None:
            cycle = s.get(SlaCycle, conv.current_sla_id)
            if cycle is not None and cycle.responded_at is None:
                cycle.responded_at = now
                cycle.closed_by = by
                cycle.met = now <= cycle.due_at
        conv.current_sla_id = None
        conv.awaiting_since = None

    # ------------------------------------------------------------------------------------------------------------
    # outbound status

    def _outbound_delivered(self, s: Session, event: Event, response: Any) -> None:
        """The helpdesk accepted the outbound webhook: the message is sent (never moves a later status back)."""
        now = self.clock.now()
        channel_id = None
        if response.headers.get("content-type", "").startswith("application/json"):
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("channel_message_id"), str):
                channel_id = body["channel_message_id"][:200]
        values: dict[str, Any] = {"status": MessageStatus.sent.value, "sent_at": now}
        res = s.execute(
            update(Message)
            .where(Message.id == event.message_id, Message.status == MessageStatus.queued.value)
            .values(**values)
        )
        if channel_id:
            s.execute(
                update(Message)
                .where(Message.id == event.message_id, Message.channel_message_id.is_(None))
                .values(channel_message_id=channel_id)
            )
        if res.rowcount == 1:
            self.events.emit(
                s,
                "message.status",
                {"message_id": event.message_id, "status": "sent"},
                now=now,
                conversation_id=event.conversation_id,
                message_id=event.message_id,
            )

    def _outbound_failed(self, s: Session, event: Event, error: str) -> None:
        now = self.clock.now()
        res = s.execute(
            update(Message)
            .where(Message.id == event.message_id, Message.status == MessageStatus.queued.value)
            .values(
                status=MessageStatus.failed.value, failed_at=now, error=f"webhook delivery failed: {error}"
            )
        )
        if res.rowcount == 1:
            self.events.emit(
                s,
                "message.failed",
                {"message_id": event.message_id, "error": error},
                now=now,
                conversation_id=event.conversation_id,
                message_id=event.message_id,
            )

    def apply_receipt(self, message_id: int, receipt: StatusReceipt) -> StatusRead:
        """Apply a channel receipt. Statuses only move forward; `delivered`/`read` on a message still `queued`
        prove it left, so its `sent_at` is filled in — `read` is never shown without a send time before it."""
        for _ in range(MAX_RETRIES):
            now = self.clock.now()
            at = ensure_utc(receipt.at) if receipt.at else now
            with self.db.session() as s:
                msg = s.get(Message, message_id)
                if msg is None:
                    raise NotFound(f"no message {message_id}")
                if msg.direction != Direction.outbound.value:
                    raise Conflict(
                        "receipts are for outbound messages; an agent marks inbound messages read with "
                        f"POST /v1/messages/{message_id}/read"
                    )
                current = MessageStatus(msg.status)
                new = MessageStatus(receipt.status.value)
                reason = _receipt_refusal(current, new)
                if receipt.channel_message_id and not msg.channel_message_id:
                    msg.channel_message_id = receipt.channel_message_id
                if reason:
                    self.metrics.receipts.labels(new.value, "false").inc()
                    return StatusRead(applied=False, reason=reason, message=self._message_read(msg))
                values: dict[str, Any] = {"status": new.value}
                if new is MessageStatus.failed:
                    values.update(failed_at=at, error=receipt.error or "failed on the channel")
                else:
                    floor = msg.created_at
                    sent_at = msg.sent_at or max(at, floor)
                    values["sent_at"] = sent_at
                    if new in (MessageStatus.delivered, MessageStatus.read):
                        values["delivered_at"] = msg.delivered_at or max(at, sent_at)
                    if new is MessageStatus.read:
                        values["read_at"] = max(at, values["delivered_at"])
                res = s.execute(
                    update(Message)
                    .where(Message.id == message_id, Message.status == current.value)
                    .values(**values)
                )
                if res.rowcount != 1:
                    continue  # another receipt won the race: re-read and re-decide
                self.events.emit(
                    s,
                    "message.status",
                    {"message_id": message_id, "status": new.value, "at": at.isoformat()},
                    now=now,
                    conversation_id=msg.conversation_id,
                    message_id=message_id,
                )
                s.flush()
                s.refresh(msg)
                self.metrics.receipts.labels(new.value, "true").inc()
                return StatusRead(applied=True, message=self._message_read(msg))
        raise Conflict(f"message {message_id} is changing too fast; retry the receipt")

    def mark_read(self, message_id: int, principal: Principal) -> MessageRead:
        """An agent opened the conversation up to this inbound message: it (and earlier ones) are read.
        Emits `message.read` once, so the helpdesk can send the channel's read receipt."""
        now = self.clock.now()
        with self.db.session() as s:
            msg = s.get(Message, message_id)
            if msg is None:
                raise NotFound(f"no message {message_id}")
            if msg.direction != Direction.inbound.value:
                raise Conflict("only inbound messages have an agent read state")
            unread = list(
                s.scalars(
                    select(Message).where(
                        Message.conversation_id == msg.conversation_id,
                        Message.direction == Direction.inbound.value,
                        Message.id <= msg.id,
                        Message.agent_read_at.is_(None),
                    )
                )
            )
            ids = []
            for m in unread:
                res = s.execute(
                    update(Message)
                    .where(Message.id == m.id, Message.agent_read_at.is_(None))
                    .values(agent_read_at=now, agent_read_by=principal.name)
                )
                if res.rowcount == 1:
                    ids.append(m)
            if ids:
                self.events.emit(
                    s,
                    "message.read",
                    {
                        "message_ids": [m.id for m in ids],
                        "channel_message_ids": [m.channel_message_id for m in ids if m.channel_message_id],
                        "by": principal.name,
                    },
                    now=now,
                    conversation_id=msg.conversation_id,
                    message_id=msg.id,
                )
            s.flush()
            s.refresh(msg)
            return self._message_read(msg)

    def outbound_by_channel_id(self, channel: str, channel_message_id: str) -> int | None:
        with self.db.session() as s:
            return s.scalars(
                select(Message.id).where(
                    Message.channel == channel,
                    Message.channel_message_id == channel_message_id,
                    Message.direction == Direction.outbound.value,
                )
            ).first()

    def outbound_sent_before(self, channel: str, conversation_external_id: str, at: datetime) -> list[int]:
        """Outbound messages of a thread, sent by `at` and not yet read (for read watermarks)."""
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(Message.id)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .where(
                        Conversation.channel == channel,
                        Conversation.external_id == conversation_external_id,
                        Message.direction == Direction.outbound.value,
                        Message.status.in_([MessageStatus.sent.value, MessageStatus.delivered.value]),
                        Message.sent_at <= at,
                    )
                    .order_by(Message.id)
                )
            )

    def list_messages(
        self,
        *,
        status: MessageStatus | None,
        direction: Direction | None,
        conversation_id: int | None,
        limit: int,
    ) -> list[MessageRead]:
        with self.db.session() as s:
            q = select(Message).order_by(Message.id).limit(limit)
            if status:
                q = q.where(Message.status == status.value)
            if direction:
                q = q.where(Message.direction == direction.value)
            if conversation_id is not None:
                q = q.where(Message.conversation_id == conversation_id)
            return [self._message_read(m) for m in s.scalars(q)]

    def get_message(self, message_id: int) -> MessageRead:
        with self.db.session() as s:
            msg = s.get(Message, message_id)
            if msg is None:
                raise NotFound(f"no message {message_id}")
            return self._message_read(msg)

    # ------------------------------------------------------------------------------------------------------------
    # conversations, queue, SLA events

    @staticmethod
    def _conversation(s: Session, conversation_id: int) -> Conversation:
        conv = s.get(Conversation, conversation_id)
        if conv is None:
            raise NotFound(f"no conversation {conversation_id}")
        return conv

    def conversation(self, conversation_id: int) -> ConversationDetail:
        now = self.clock.now()
        with self.db.session() as s:
            conv = self._conversation(s, conversation_id)
            base = self._conversation_read(s, conv, now)
            msgs = s.scalars(select(Message).where(Message.conversation_id == conv.id).order_by(Message.id))
            sugs = s.scalars(
                select(Suggestion).where(Suggestion.conversation_id == conv.id).order_by(Suggestion.id)
            )
            surveys = s.scalars(select(Survey).where(Survey.conversation_id == conv.id).order_by(Survey.id))
            return ConversationDetail(
                **base.model_dump(),
                messages=[self._message_read(m) for m in msgs],
                suggestions=[self._suggestion_read(x) for x in sugs],
                surveys=[_survey_read(x) for x in surveys],
            )

    def queue(self, *, state: SlaState | None = None, limit: int = 100) -> QueueRead:
        now = self.clock.now()
        self.scan_sla()
        with self.db.session() as s:
            convs = list(
                s.scalars(select(Conversation).where(Conversation.status == ConversationStatus.open.value))
            )
            ids = [c.id for c in convs]
            cycles = (
                {
                    c.id: c
                    for c in s.scalars(
                        select(SlaCycle).where(
                            SlaCycle.id.in_([c.current_sla_id for c in convs if c.current_sla_id])
                        )
                    )
                }
                if convs
                else {}
            )
            customers = (
                {
                    c.id: c
                    for c in s.scalars(
                        select(Customer).where(Customer.id.in_({c.customer_id for c in convs}))
                    )
                }
                if convs
                else {}
            )
            pending = (
                dict(
                    s.execute(
                        select(Suggestion.conversation_id, func.count())
                        .where(
                            Suggestion.conversation_id.in_(ids),
                            Suggestion.status == SuggestionStatus.pending.value,
                        )
                        .group_by(Suggestion.conversation_id)
                    ).all()
                )
                if ids
                else {}
            )
            unread = (
                dict(
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
                if ids
                else {}
            )
            last_text = {}
            if ids:
                last_ids = (
                    select(func.max(Message.id))
                    .where(Message.conversation_id.in_(ids), Message.direction == Direction.inbound.value)
                    .group_by(Message.conversation_id)
                )
                for m in s.scalars(select(Message).where(Message.id.in_(last_ids))):
                    last_text[m.conversation_id] = m.text[:200]
            items = []
            for c in convs:
                cycle = cycles.get(c.current_sla_id) if c.current_sla_id else None
                sla = self._sla_read(cycle, now) if cycle else None
                items.append(
                    QueueItem(
                        conversation_id=c.id,
                        channel=c.channel,
                        external_id=c.external_id,
                        customer_name=customers[c.customer_id].name if c.customer_id in customers else None,
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
                    )
                )
        counts = {st.value: 0 for st in SlaState}
        for it in items:
            counts[it.state.value] += 1
        far = datetime.max.replace(tzinfo=now.tzinfo)
        items.sort(
            key=lambda it: (
                STATE_RANK[it.state],
                it.due_at is None,
                URGENCY_RANK[it.urgency],
                it.due_at or far,
                it.conversation_id,
            )
        )
        if state is not None:
            items = [it for it in items if it.state is state]
        return QueueRead(now=now, counts=counts, items=items[:limit])

    def scan_sla(self) -> int:
        """Emit `sla.at_risk` and `sla.breached` once per wait. Returns how many events were emitted."""
        now = self.clock.now()
        emitted = 0
        with self.db.session() as s:
            due = list(
                s.scalars(
                    select(SlaCycle).where(
                        SlaCycle.responded_at.is_(None),
                        or_(
                            (SlaCycle.at_risk_emitted_at.is_(None) & (SlaCycle.at_risk_at <= now)),
                            (SlaCycle.breached_emitted_at.is_(None) & (SlaCycle.due_at <= now)),
                        ),
                    )
                )
            )
            for cycle in due:
                conv = s.get(Conversation, cycle.conversation_id)
                if conv is None or conv.current_sla_id != cycle.id:
                    continue
                breached = now >= cycle.due_at
                marks = []
                if cycle.at_risk_emitted_at is None:
                    marks.append(("at_risk", SlaCycle.at_risk_emitted_at, not breached))
                if breached and cycle.breached_emitted_at is None:
                    marks.append(("breached", SlaCycle.breached_emitted_at, True))
                for name, column, announce in marks:
                    res = s.execute(
                        update(SlaCycle)
                        .where(SlaCycle.id == cycle.id, column.is_(None))
                        .values({column.key: now})
                    )
                    if res.rowcount != 1 or not announce:
                        continue  # another process announced it, or it is stale (already breached)
                    self.events.emit(
                        s,
                        f"sla.{name}",
                        {
                            "conversation_id": conv.id,
                            "kind": cycle.kind,
                            "urgency": cycle.urgency,
                            "started_at": cycle.started_at.isoformat(),
                            "due_at": cycle.due_at.isoformat(),
                        },
                        now=now,
                        conversation_id=conv.id,
                        message_id=cycle.message_id,
                        dedupe_key=f"sla:{cycle.id}:{name}",
                    )
                    emitted += 1
        return emitted

    def resolve(self, conversation_id: int, req: ResolveRequest, principal: Principal) -> ResolveRead:
        now = self.clock.now()
        with self.db.session() as s:
            conv = self._conversation(s, conversation_id)
            res = s.execute(
                update(Conversation)
                .where(
                    Conversation.id == conversation_id, Conversation.status == ConversationStatus.open.value
                )
                .values(
                    status=ConversationStatus.resolved.value,
                    resolved_at=now,
                    resolved_by=principal.name,
                    updated_at=now,
                )
            )
            if res.rowcount != 1:
                raise Conflict(f"conversation {conversation_id} is already resolved")
            s.refresh(conv)
            self._close_cycle(s, conv, now, "resolve")
            self._supersede(s, conv.id, up_to_message_id=None, keep=None)
            self.events.emit(
                s,
                "conversation.resolved",
                {"conversation_id": conv.id, "by": principal.name, "note": req.note},
                now=now,
                conversation_id=conv.id,
            )
            self.metrics.resolved.inc()
            kind = self._survey_kind(conv.channel, req.survey)
            survey = out = None
            if kind is not None:
                survey, out = self._queue_survey(s, conv, kind, now, principal)
            s.flush()
            return ResolveRead(
                conversation=self._conversation_read(s, conv, now),
                survey=_survey_read(survey) if survey else None,
                survey_message=self._message_read(out) if out else None,
            )

    def _survey_kind(self, channel: str, requested: SurveyChoice | None) -> SurveyKind | None:
        if not self.settings.surveys_enabled:
            return None
        choice = (
            requested.value
            if requested
            else self.settings.survey_by_channel.get(
                channel, self.settings.survey_by_channel.get("default", "off")
            )
        )
        if choice not in ("csat", "nps"):
            if choice != "off":
                raise InvalidInput(
                    f"survey setting {choice!r} for channel {channel!r} is not csat, nps or off"
                )
            return None
        return SurveyKind(choice)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Counts for the Prometheus gauges (queue per SLA state, outbox per status)."""
        now = self.clock.now()
        queue = {st.value: 0 for st in SlaState}
        with self.db.session() as s:
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
            outbox = dict(
                s.execute(select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)).all()
            )
        for at_risk_at, due_at in rows:
            queue[SlaPolicy.state(at_risk_at, due_at, now).value] += 1
        queue[SlaState.ok.value] += open_count - len(rows)
        return {"queue": queue, "outbox": {k: int(v) for k, v in outbox.items()}}

    # ------------------------------------------------------------------------------------------------------------
    # reads

    def _sla_read(self, cycle: SlaCycle, now: datetime) -> SlaRead:
        kind, urgency = SlaKind(cycle.kind), UrgencyLevel(cycle.urgency)
        return SlaRead(
            kind=kind,
            urgency=urgency,
            state=SlaPolicy.state(cycle.at_risk_at, cycle.due_at, now),
            started_at=cycle.started_at,
            at_risk_at=cycle.at_risk_at,
            due_at=cycle.due_at,
            elapsed_ratio=self.sla.elapsed_ratio(kind, urgency, cycle.started_at, now),
        )

    def _conversation_read(self, s: Session, conv: Conversation, now: datetime) -> ConversationRead:
        customer = s.get(Customer, conv.customer_id)
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
            sla=self._sla_read(cycle, now) if cycle and cycle.responded_at is None else None,
        )

    @staticmethod
    def _message_read(m: Message) -> MessageRead:
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
            agent_read_at=m.agent_read_at,
            suggestion_id=m.suggestion_id,
        )

    @staticmethod
    def _suggestion_read(x: Suggestion) -> SuggestionRead:
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


def _survey_read(x: Survey) -> SurveyRead:
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


def _receipt_refusal(current: MessageStatus, new: MessageStatus) -> str | None:
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


def _get(obj: Any, name: str, default: Any) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _dump(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return dict(obj) if isinstance(obj, dict) else {"value": str(obj)}


def _drafts_of(result: Any) -> list[Any]:
    """Drafts of an extended triage result: `drafts` may be a list or an object with a `drafts` list."""
    drafts = _get(result, "drafts", None)
    if drafts is None:
        return []
    inner = _get(drafts, "drafts", None)
    if inner is not None and not isinstance(drafts, list):
        return list(inner)
    return list(drafts) if isinstance(drafts, list | tuple) else []


def _drafts_language(result: Any) -> str | None:
    drafts = _get(result, "drafts", None)
    if drafts is None or isinstance(drafts, list | tuple):
        return None
    lang = _get(drafts, "language", None)
    return lang if isinstance(lang, str) else None


def _call_pipeline(pipeline: Pipeline, request: TriageRequest, facts: list[ContextFact]) -> Any:
    """Pass context facts to the pipeline when it takes them (`facts=`); older pipelines take only the request."""
    if facts:
        try:
            params = inspect.signature(pipeline).parameters
        except (TypeError, ValueError):
            params = {}
        if "facts" in params:
            return pipeline(request, facts=facts)
    return pipeline(request)
