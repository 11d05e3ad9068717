"""Suggestions and the agent's decisions: list, approve (as drafted or edited), send, reject, or reply in the
agent's own words. A reply goes through the tone check first; `block` findings need an override reason.

Every decision is a conditional UPDATE on the suggestion's status, so two agents (or two retries) racing on
the same suggestion cannot both win. Approving with `send` records the decision and queues the outbound
message in one transaction (crash-safe), and a sequential retry of the same approval is answered from storage.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rapidfuzz.distance import Levenshtein
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.auth.models import Principal
from service.db.models import Conversation, Customer, Message, Suggestion
from service.db.rows import changed, get_row
from service.errors import Conflict, InvalidInput
from service.workflow.context import WorkflowContext
from service.workflow.mapping import (
    conversation_or_404,
    message_read,
    suggestion_or_404,
    suggestion_read,
)
from service.workflow.models import (
    ApproveRequest,
    DecisionRead,
    Direction,
    MessageKind,
    RejectRequest,
    ReplyRequest,
    SuggestionRead,
    SuggestionStatus,
    TemplateRef,
    ToneReport,
)
from service.workflow.outbound import helpdesk_transport, queue_outbound


class ToneBlocked(Conflict):
    """The reply has `block` tone findings and no override reason was given."""

    code = "tone_blocked"


def list_suggestions(
    ctx: WorkflowContext, status: SuggestionStatus | None, conversation_id: int | None, limit: int
) -> list[SuggestionRead]:
    with ctx.db.session() as s:
        q = select(Suggestion).order_by(Suggestion.id.desc()).limit(limit)
        if status:
            q = q.where(Suggestion.status == status.value)
        if conversation_id is not None:
            q = q.where(Suggestion.conversation_id == conversation_id)
        return [suggestion_read(x) for x in s.scalars(q)]


def get_suggestion(ctx: WorkflowContext, suggestion_id: int) -> SuggestionRead:
    with ctx.db.session() as s:
        return suggestion_read(suggestion_or_404(s, suggestion_id))


# -- tone ----------------------------------------------------------------------------------------------------


def tone_context(s: Session, conv: Conversation, message_id: int | None) -> tuple[str | None, dict[str, Any]]:
    customer = get_row(s, Customer, conv.customer_id)
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


def preview_tone(ctx: WorkflowContext, conversation_id: int, text: str) -> ToneReport:
    """The findings a reply would get if sent now in this conversation (same locale and context as
    `approve` and `reply` use), without deciding anything: the composer shows them while the agent types."""
    with ctx.db.session() as s:
        conv = conversation_or_404(s, conversation_id)
        locale, context = tone_context(s, conv, None)
    if ctx.tone_check is None or not text.strip():
        return ToneReport(ok=True, findings=[])
    findings = [f.model_dump(mode="json") for f in ctx.tone_check(text, locale, context).findings]
    return ToneReport(ok=not any(str(f.get("severity")) == "block" for f in findings), findings=findings)


def check_tone(
    ctx: WorkflowContext, text: str, locale: str | None, context: dict[str, Any], override: str | None
) -> ToneReport | None:
    if ctx.tone_check is None:
        return None
    result = ctx.tone_check(text, locale, context)
    findings = [f.model_dump(mode="json") for f in result.findings]
    blocks = [f for f in findings if str(f.get("severity")) == "block"]
    if blocks and not override:
        raise ToneBlocked(
            "the reply has tone findings that block sending; fix the text or approve with an "
            "`override_reason`",
            details={"findings": findings},
        )
    return ToneReport(ok=not blocks, findings=findings, overridden=bool(blocks))


# -- decisions -----------------------------------------------------------------------------------------------


def approve(
    ctx: WorkflowContext, suggestion_id: int, req: ApproveRequest, principal: Principal
) -> DecisionRead:
    """Record the decision and, with `send` (the default), queue the outbound message in the same
    transaction: a crash leaves the suggestion either pending or sent, never approved without its message.
    Repeating the same approval (same key, same text: a retry whose answer was lost) answers 200 with the
    stored result and queues nothing again."""
    with ctx.db.session() as s:
        sug = suggestion_or_404(s, suggestion_id)
        if sug.status != SuggestionStatus.pending.value:
            repeated = repeated_approval(s, sug, req, principal)
            if repeated is not None:
                return repeated
            raise Conflict(
                f"suggestion {suggestion_id} is {sug.status}; only pending suggestions can be approved",
                details={"status": sug.status},
            )
        conv = get_row(s, Conversation, sug.conversation_id)
        conversation_id = conv.id
        locale, context = tone_context(s, conv, sug.message_id)
        draft = sug.draft_text
    final = req.text if req.text is not None else draft
    edited = final != draft
    tone = check_tone(ctx, final, locale, context, req.override_reason)
    now = ctx.clock.now()
    decision = SuggestionStatus.edited if edited else SuggestionStatus.approved
    with ctx.db.session() as s:
        won = changed(
            s,
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
            ),
        )
        if won != 1:
            raise Conflict(f"suggestion {suggestion_id} was decided by someone else meanwhile")
        ctx.events.emit(
            s,
            f"suggestion.{decision.value}",
            {"suggestion_id": suggestion_id, "by": principal.name},
            now=now,
            conversation_id=conversation_id,
        )
        out = queue_send(ctx, s, suggestion_id, principal, now) if req.send else None
        sug = get_row(s, Suggestion, suggestion_id)
        s.refresh(sug)
        result = DecisionRead(
            suggestion=suggestion_read(sug), message=message_read(out) if out else None, tone=tone
        )
    ctx.metrics.decisions.labels(decision.value).inc()
    return result


def repeated_approval(
    s: Session, sug: Suggestion, req: ApproveRequest, principal: Principal
) -> DecisionRead | None:
    """The stored result when `req` repeats the approval already recorded (same key, same final text, and
    sent iff `send`); None when it is a different decision (a conflict)."""
    final = req.text if req.text is not None else sug.draft_text
    if sug.decided_by_key_id != principal.key_id or sug.final_text != final:
        return None
    decided = (SuggestionStatus.approved.value, SuggestionStatus.edited.value)
    if req.send and sug.status == SuggestionStatus.sent.value and sug.outbound_message_id is not None:
        out: Message | None = get_row(s, Message, sug.outbound_message_id)
    elif not req.send and sug.status in decided:
        out = None
    else:
        return None
    findings = sug.tone_findings
    tone = (
        None
        if findings is None
        else ToneReport(
            ok=not any(str(f.get("severity")) == "block" for f in findings),
            findings=findings,
            overridden=sug.tone_override_reason is not None,
        )
    )
    return DecisionRead(
        suggestion=suggestion_read(sug), message=message_read(out) if out else None, tone=tone
    )


def queue_send(
    ctx: WorkflowContext, s: Session, suggestion_id: int, principal: Principal, now: datetime
) -> Message | None:
    """In the caller's transaction: move an approved/edited suggestion to `sent` and queue its outbound
    message. None when it was not approved/edited any more (someone else sent it)."""
    won = changed(
        s,
        update(Suggestion)
        .where(
            Suggestion.id == suggestion_id,
            Suggestion.status.in_([SuggestionStatus.approved.value, SuggestionStatus.edited.value]),
        )
        .values(status=SuggestionStatus.sent.value, sent_at=now),
    )
    if won != 1:
        return None
    sug = get_row(s, Suggestion, suggestion_id)
    s.refresh(sug)
    conv = get_row(s, Conversation, sug.conversation_id)
    out = queue_outbound(
        ctx, s, conv, sug.final_text or sug.draft_text, MessageKind.reply, principal, sug.id, now
    )
    sug.outbound_message_id = out.id
    supersede(s, conv.id, up_to_message_id=sug.message_id, keep=sug.id)
    s.flush()
    return out


def send(ctx: WorkflowContext, suggestion_id: int, principal: Principal) -> DecisionRead:
    """Queue the approved/edited text as an outbound message. Sending again returns the same message."""
    now = ctx.clock.now()
    with ctx.db.session() as s:
        sug = suggestion_or_404(s, suggestion_id)
        if sug.status == SuggestionStatus.sent.value:
            sent = get_row(s, Message, sug.outbound_message_id)
            return DecisionRead(suggestion=suggestion_read(sug), message=message_read(sent))
        if sug.status not in (SuggestionStatus.approved.value, SuggestionStatus.edited.value):
            raise Conflict(
                f"suggestion {suggestion_id} is {sug.status}; only approved or edited suggestions "
                "can be sent",
                details={"status": sug.status},
            )
        out = queue_send(ctx, s, suggestion_id, principal, now)
        if out is None:
            raise Conflict(f"suggestion {suggestion_id} was sent by someone else meanwhile")
        s.refresh(sug)
        return DecisionRead(suggestion=suggestion_read(sug), message=message_read(out))


def reject(
    ctx: WorkflowContext, suggestion_id: int, req: RejectRequest, principal: Principal
) -> DecisionRead:
    now = ctx.clock.now()
    with ctx.db.session() as s:
        sug = suggestion_or_404(s, suggestion_id)
        won = changed(
            s,
            update(Suggestion)
            .where(Suggestion.id == suggestion_id, Suggestion.status == SuggestionStatus.pending.value)
            .values(
                status=SuggestionStatus.rejected.value,
                decision=SuggestionStatus.rejected.value,
                reject_reason=req.reason,
                decided_at=now,
                decided_by=principal.name,
                decided_by_key_id=principal.key_id,
            ),
        )
        if won != 1:
            raise Conflict(
                f"suggestion {suggestion_id} is {sug.status}; only pending suggestions can be rejected",
                details={"status": sug.status},
            )
        ctx.events.emit(
            s,
            "suggestion.rejected",
            {"suggestion_id": suggestion_id, "reason": req.reason, "by": principal.name},
            now=now,
            conversation_id=sug.conversation_id,
        )
        s.refresh(sug)
        ctx.metrics.decisions.labels("rejected").inc()
        return DecisionRead(suggestion=suggestion_read(sug))


def reply(
    ctx: WorkflowContext, conversation_id: int, req: ReplyRequest, principal: Principal
) -> DecisionRead:
    with ctx.db.session() as s:
        conv = conversation_or_404(s, conversation_id)
        locale, context = tone_context(s, conv, None)
        if req.template is not None and conv.channel != "whatsapp":
            raise InvalidInput(
                "message templates are a WhatsApp feature; "
                f"conversation {conversation_id} is on {conv.channel}"
            )
        if req.template is not None and helpdesk_transport(ctx, conv) == "twilio:":
            raise InvalidInput(
                "WhatsApp templates sent through Twilio need a Twilio Content SID, which ReplyDesk does not "
                "send yet; send the template from Twilio, or connect the number via the WhatsApp Cloud API"
            )
    tone = check_tone(ctx, req.text, locale, context, req.override_reason) if req.text else None
    text = req.text or template_text(req.template)
    now = ctx.clock.now()
    with ctx.db.session() as s:
        conv = conversation_or_404(s, conversation_id)
        out = queue_outbound(
            ctx, s, conv, text, MessageKind.reply, principal, None, now, template=req.template
        )
        supersede(s, conv.id, up_to_message_id=None, keep=None)
        return DecisionRead(message=message_read(out), tone=tone)


def template_text(template: TemplateRef | None) -> str:
    """What the thread shows for a template message (the channel renders the template itself)."""
    if template is None:
        return ""
    params = f": {' | '.join(template.parameters)}" if template.parameters else ""
    return f"[template {template.name} ({template.language}){params}]"


def supersede(s: Session, conversation_id: int, *, up_to_message_id: int | None, keep: int | None) -> None:
    """Pending suggestions the conversation has moved past (an answer was sent) are superseded."""
    q = update(Suggestion).where(
        Suggestion.conversation_id == conversation_id, Suggestion.status == SuggestionStatus.pending.value
    )
    if up_to_message_id is not None:
        q = q.where(Suggestion.message_id <= up_to_message_id)
    if keep is not None:
        q = q.where(Suggestion.id != keep)
    s.execute(q.values(status=SuggestionStatus.superseded.value))
