"""Workflow schemas: ingest, conversations, messages, suggestions and decisions, receipts, queue, surveys,
KPIs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from service.pipeline.models import TriagePipelineRead
from service.triage.models import (
    MAX_TEXT_CHARS,
    Channel,
    TriageRead,
    UrgencyLevel,
    clean_text,
    has_content,
)

# Row ids are 64-bit integers on every database: a larger id in a path or query is a 422, not a driver
# overflow.
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A row id (1 … 2^63 - 1).")]
RowIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="A row id (1 … 2^63 - 1).")]


class Direction(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class MessageKind(StrEnum):
    customer = "customer"
    reply = "reply"
    survey = "survey"
    survey_reply = "survey_reply"
    reaction = "reaction"  # an emoji reaction to a message: kept in the thread, starts no wait


class MessageStatus(StrEnum):
    received = "received"
    queued = "queued"
    sent = "sent"
    delivered = "delivered"
    read = "read"
    failed = "failed"


class ReceiptStatus(StrEnum):
    sent = "sent"
    delivered = "delivered"
    read = "read"
    failed = "failed"


class SuggestionStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    edited = "edited"
    rejected = "rejected"
    sent = "sent"
    superseded = "superseded"


class ConversationStatus(StrEnum):
    open = "open"
    resolved = "resolved"


class SlaState(StrEnum):
    ok = "ok"
    at_risk = "at_risk"
    breached = "breached"


class SlaKind(StrEnum):
    first_response = "first_response"
    next_response = "next_response"


class SurveyKind(StrEnum):
    csat = "csat"
    nps = "nps"


class SurveyChoice(StrEnum):
    csat = "csat"
    nps = "nps"
    off = "off"


class PipelineStatus(StrEnum):
    pending = "pending"
    done = "done"
    failed = "failed"
    skipped = "skipped"


def _clean_optional_text(v: str | None, field: str) -> str | None:
    if v is None:
        return None
    v = clean_text(v)
    if v and not has_content(v):
        raise ValueError(
            f"{field} has only invisible characters (zero-width spaces, joiners); send visible text, or omit "
            "it for an attachment-only message"
        )
    if len(v) > MAX_TEXT_CHARS:
        raise ValueError(f"{field} has {len(v)} characters; the limit is {MAX_TEXT_CHARS}")
    return v


# -- ingest --------------------------------------------------------------------------------------------------


class Attachment(BaseModel):
    """Anything a message carries besides its text, kept so an agent sees what the customer sent."""

    type: str = Field(
        min_length=1,
        max_length=20,
        description="image | video | audio | file | sticker | location | contact | order | reaction | "
        "link | postback | button | form | share | story | referral",
    )
    url: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        description="Where it is: a media link, `whatsapp-media:{id}`, `geo:lat,long`; none for a contact "
        "card, an order or a reaction.",
    )
    caption: str | None = Field(None, max_length=1000, description="Caption, title or label.")
    filename: str | None = Field(None, max_length=300, description="A document's file name.")
    mime_type: str | None = Field(None, max_length=100)
    data: dict[str, Any] | None = Field(
        None,
        description="Structured content: a location's name and address, a contact card's names and "
        "phones, an order's items, a reaction's emoji and target, a button's id and payload, a form's "
        "answers.",
    )

    @model_validator(mode="after")
    def _has_content(self) -> Attachment:
        if not (self.url or self.caption or self.data or self.filename):
            raise ValueError("an attachment needs a url, a caption or data")
        return self


class CustomerIn(BaseModel):
    id: str = Field(
        min_length=1, max_length=200, description="The customer's id on the channel (phone, PSID...)."
    )
    name: str | None = Field(None, max_length=200)
    locale: str | None = Field(None, max_length=35, description="BCP 47, e.g. `es-MX`.")
    country: str | None = Field(None, min_length=2, max_length=2, description="ISO 3166-1 alpha-2.")

    @field_validator("country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        return v.upper() if v else v


class MessageBase(BaseModel):
    channel: Channel
    conversation_external_id: str = Field(
        min_length=1, max_length=200, description="The thread's id on the channel or helpdesk."
    )
    customer: CustomerIn
    text: str = Field("", description="The message (may be empty when it only has attachments).")
    sent_at: AwareDatetime = Field(description="When the customer sent it (ISO 8601 with a zone).")
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=200, description="Re-sending the same key returns the first result."
    )
    channel_message_id: str | None = Field(
        None, min_length=1, max_length=200, description="The channel's message id; also deduplicates."
    )
    reply_to: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The channel message id of the message this one quotes or replies to.",
    )

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        return _clean_optional_text(v, "text") or ""

    @model_validator(mode="after")
    def _needs_content(self) -> MessageBase:
        if not self.text and not self.attachments:
            raise ValueError("a message needs text or at least one attachment")
        return self


class MessageCreate(MessageBase):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "channel": "whatsapp",
                    "conversation_external_id": "wa:5215512345678",
                    "customer": {"id": "5215512345678", "name": "Ana", "locale": "es-MX", "country": "MX"},
                    "text": "Hola, mi pedido #A12345 no ha llegado y lo necesito hoy!!",
                    "sent_at": "2026-01-05T09:00:00Z",
                    "attachments": [],
                    "idempotency_key": "wamid.HBgM1",
                }
            ]
        }
    )


# -- reads ---------------------------------------------------------------------------------------------------


class CustomerRead(BaseModel):
    id: int
    external_id: str
    name: str | None = None
    locale: str | None = None
    country: str | None = None


class MessageRead(BaseModel):
    id: int
    conversation_id: int
    channel: str
    direction: Direction
    kind: MessageKind
    status: MessageStatus
    text: str
    attachments: list[Attachment] = Field(default_factory=list)
    channel_message_id: str | None = None
    author: str | None = Field(None, description="The agent (key name) who sent an outbound message.")
    created_at: datetime = Field(description="When ReplyDesk stored it.")
    customer_sent_at: datetime | None = Field(None, description="Inbound: when the customer sent it.")
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = Field(None, description="Outbound: when the customer read it.")
    failed_at: datetime | None = None
    error: str | None = None
    error_code: str | None = Field(None, description="The channel's error code for a failed message.")
    reply_to: str | None = Field(None, description="Channel message id of the message this one quotes.")
    agent_read_at: datetime | None = Field(None, description="Inbound: when an agent opened it.")
    suggestion_id: int | None = None


class SlaRead(BaseModel):
    kind: SlaKind
    urgency: UrgencyLevel
    state: SlaState
    started_at: datetime
    at_risk_at: datetime
    due_at: datetime
    elapsed_ratio: float = Field(description="Share of the target used so far (1.0 = due now).")


class AssignmentRead(BaseModel):
    agent: str = Field(description="The agent's key name.")
    key_id: str
    at: datetime


class ConversationRead(BaseModel):
    id: int
    channel: str
    external_id: str
    status: ConversationStatus
    urgency: UrgencyLevel
    intent: str | None = None
    language: str | None = None
    customer: CustomerRead
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None = None
    last_customer_message_at: datetime | None = None
    resolved_at: datetime | None = None
    sla: SlaRead | None = Field(None, description="The customer's current wait, if any.")
    assignment: AssignmentRead | None = Field(None, description="The agent working it, if assigned.")


class SuggestionRead(BaseModel):
    id: int
    conversation_id: int
    message_id: int
    rank: int = Field(description="1 = best draft.")
    status: SuggestionStatus
    decision: SuggestionStatus | None = Field(
        None, description="approved | edited | rejected, kept after `sent`."
    )
    draft_text: str
    final_text: str | None = None
    intent: str | None = None
    intent_confidence: float | None = None
    language: str | None = None
    generator: str | None = None
    cited_article_ids: list[str] = Field(default_factory=list)
    draft_tone_findings: list[dict[str, Any]] = Field(default_factory=list)
    draft_safety_findings: list[dict[str, Any]] = Field(
        default_factory=list, description="Links and claims the drafting checks removed, and why."
    )
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    edit_distance: int | None = Field(None, description="Levenshtein distance between draft and final text.")
    reject_reason: str | None = None
    tone_findings: list[dict[str, Any]] | None = Field(None, description="Tone check of the final text.")
    tone_override_reason: str | None = None
    sent_at: datetime | None = None
    outbound_message_id: int | None = None


class ContextFact(BaseModel):
    source: str = Field(description="Provider name, e.g. `order_status`.")
    key: str = Field(description="What the fact is about, e.g. the order number.")
    text: str = Field(description="The fact in one line, for the agent and the drafter.")
    data: dict[str, Any] = Field(default_factory=dict)


class PipelineRead(BaseModel):
    status: PipelineStatus
    error: str | None = None


class IngestRead(BaseModel):
    duplicate: bool = Field(
        description="True when this message was already ingested (same key or channel id)."
    )
    conversation: ConversationRead
    message: MessageRead
    triage: TriageRead | None = None
    suggestions: list[SuggestionRead] = Field(default_factory=list)
    facts: list[ContextFact] = Field(default_factory=list)
    pipeline: PipelineRead
    survey_id: int | None = Field(None, description="Set when the message answered a satisfaction survey.")


class QueuedRead(BaseModel):
    """A message a channel webhook stored; its triage and suggestions follow from the workers
    (`suggestions.created`)."""

    message_id: int
    conversation_id: int
    duplicate: bool = Field(description="Already stored before (same channel message id).")
    queued: bool = Field(description="Its pipeline (triage and drafts) is queued for the workers.")


class SurveyRead(BaseModel):
    id: int
    conversation_id: int
    kind: SurveyKind
    locale: str
    status: str = Field(description="sent | answered | commented")
    score: int | None = None
    comment: str | None = None
    message_id: int | None = None
    created_at: datetime
    expires_at: datetime
    answered_at: datetime | None = None


class AnalysisRead(BaseModel):
    """The pipeline's result for one customer message: triage, articles found, drafts' handoff notes."""

    message_id: int
    result: TriagePipelineRead
    facts: list[ContextFact] = Field(default_factory=list)


class ConversationDetail(ConversationRead):
    messages: list[MessageRead]
    suggestions: list[SuggestionRead]
    surveys: list[SurveyRead] = Field(default_factory=list)


# -- decisions -----------------------------------------------------------------------------------------------


class ApproveRequest(BaseModel):
    text: str | None = Field(None, description="Edited text; omit to approve the draft as is.")
    override_reason: str | None = Field(
        None, min_length=3, max_length=500, description="Required to send despite `block` tone findings."
    )
    send: bool = Field(
        True, description="Send right away (default); false keeps it approved for a later /send."
    )

    @field_validator("text")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        v = _clean_optional_text(v, "text")
        if v is not None and not v:
            raise ValueError("text is empty; omit it to approve the draft unchanged")
        return v

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {},
                {"text": "Hola Ana, su pedido A12345 sale hoy y llega mañana.", "send": True},
                {"text": "Done 👍", "override_reason": "customer uses this emoji themselves"},
            ]
        }
    )


class SendRequest(BaseModel):
    override_reason: str | None = Field(None, min_length=3, max_length=500)


class RejectRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="Why the draft is unusable.")
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "wrong order number"}]})


class TemplateRef(BaseModel):
    """A message template the channel has approved (WhatsApp: the only message allowed more than 24 hours
    after the customer last wrote)."""

    name: str = Field(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_]+$", description="Template name.")
    language: str = Field(
        min_length=2,
        max_length=15,
        pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})?$",
        description="e.g. `en_US`.",
    )
    parameters: list[str] = Field(
        default_factory=list, max_length=20, description="Values of the body's {{1}}, {{2}}... in order."
    )


class ReplyRequest(BaseModel):
    text: str = Field("", description="The agent's own reply (may be empty with a `template`).")
    template: TemplateRef | None = Field(
        None,
        description="Send this approved template instead of free text (WhatsApp, outside the 24-hour "
        "customer-service window).",
    )
    override_reason: str | None = Field(None, min_length=3, max_length=500)

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        return _clean_optional_text(v, "text") or ""

    @model_validator(mode="after")
    def _needs_content(self) -> ReplyRequest:
        if not self.text and self.template is None:
            raise ValueError("text is empty after trimming (send text, or a template)")
        return self

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "Hi Ana, I'm checking with the courier now."}]}
    )


class ExternalReplyCreate(BaseModel):
    """A reply a person sent the customer outside ReplyDesk: in the helpdesk, Meta's Page inbox, the WhatsApp
    Business app. It answers the customer's wait like a reply sent from here."""

    channel: Channel
    conversation_external_id: str = Field(min_length=1, max_length=200)
    text: str = ""
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)
    sent_at: AwareDatetime
    channel_message_id: str | None = Field(None, min_length=1, max_length=200)
    author: str | None = Field(None, max_length=100, description="Who sent it, as the platform names them.")

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        return _clean_optional_text(v, "text") or ""


class ToneReport(BaseModel):
    ok: bool
    findings: list[dict[str, Any]] = Field(default_factory=list)
    overridden: bool = False


class DecisionRead(BaseModel):
    suggestion: SuggestionRead | None = None
    message: MessageRead | None = Field(None, description="The outbound message, when one was queued.")
    tone: ToneReport | None = None


# -- receipts ------------------------------------------------------------------------------------------------


class StatusReceipt(BaseModel):
    status: ReceiptStatus
    at: AwareDatetime | None = Field(None, description="When it happened on the channel (default: now).")
    channel_message_id: str | None = Field(
        None, max_length=200, description="The channel's id for this message."
    )
    error: str | None = Field(None, max_length=1000, description="Why sending failed (with `failed`).")
    error_code: str | None = Field(
        None, max_length=40, description="The channel's error code (e.g. WhatsApp `131047`, Twilio `30008`)."
    )
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "delivered", "at": "2026-01-05T09:03:10Z", "channel_message_id": "wamid.HBgM2"},
            ]
        }
    )


class StatusRead(BaseModel):
    applied: bool = Field(
        description="False when the receipt was a duplicate or would move the status backwards."
    )
    reason: str | None = None
    message: MessageRead


class ReadRequest(BaseModel):
    pass


# -- queue, resolution, events -------------------------------------------------------------------------------


class QueueItem(BaseModel):
    conversation_id: int
    channel: str
    external_id: str
    customer_name: str | None = None
    urgency: UrgencyLevel
    intent: str | None = None
    state: SlaState
    sla_kind: SlaKind | None = None
    waiting_since: datetime | None = None
    due_at: datetime | None = None
    elapsed_ratio: float | None = None
    pending_suggestions: int
    unread_messages: int
    last_message_text: str | None = None
    language: str | None = None
    customer_id: str | None = Field(None, description="The customer's id on the channel.")
    at_risk_at: datetime | None = None
    assignment: AssignmentRead | None = None


class QueueFilter(BaseModel):
    """Which open conversations the queue shows (every field narrows; none = all)."""

    channel: str | None = Field(None, max_length=20)
    urgency: UrgencyLevel | None = None
    intent: str | None = Field(None, max_length=64)
    language: str | None = Field(None, max_length=16)
    assigned_key_id: str | None = Field(None, max_length=32, description="Only those assigned to this key.")
    unassigned: bool = Field(False, description="Only those nobody is assigned to.")


class QueueRead(BaseModel):
    now: datetime
    counts: dict[str, int] = Field(description="Open conversations per SLA state.")
    items: list[QueueItem]


class AssignBase(BaseModel):
    agent_key_id: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="The agent key (id) to assign to; null unassigns. Claiming is assigning to yourself.",
    )


class AssignUpdate(AssignBase):
    expected_key_id: str | None = Field(
        None,
        max_length=32,
        description="Only reassign if it is assigned to this key now (empty string: only if unassigned); "
        "omit to reassign whoever has it.",
    )
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"agent_key_id": "key_3f9a1c2b7d", "expected_key_id": ""},
                {"agent_key_id": None},
            ]
        }
    )


class ViewerRead(BaseModel):
    agent: str
    key_id: str
    seen_at: datetime


class PresenceRead(BaseModel):
    conversation_id: int
    viewers: list[ViewerRead] = Field(description="Agents with the conversation open now (you included).")
    assignment: AssignmentRead | None = None


class ResolveRequest(BaseModel):
    survey: SurveyChoice | None = Field(
        None, description="Override the channel's survey setting for this one."
    )
    note: str | None = Field(None, max_length=1000)


class ResolveRead(BaseModel):
    conversation: ConversationRead
    survey: SurveyRead | None = None
    survey_message: MessageRead | None = None


class EventRead(BaseModel):
    id: int
    type: str
    created_at: datetime
    conversation_id: int | None = None
    message_id: int | None = None
    data: dict[str, Any]


class SurveyResponseCreate(BaseModel):
    text: str = Field(
        min_length=1, max_length=MAX_TEXT_CHARS, description="The customer's answer as written."
    )


# -- KPIs ---------------------------------------------------------------------------------------------------


class Percentiles(BaseModel):
    count: int
    p50_s: float | None = None
    p90_s: float | None = None
    mean_s: float | None = None


class SuggestionRates(BaseModel):
    decided: int
    approved: int
    edited: int
    rejected: int
    acceptance_rate: float | None = Field(None, description="Approved unchanged / decided.")
    edit_rate: float | None = Field(None, description="Approved after an edit / decided.")
    reject_rate: float | None = None
    mean_edit_distance: float | None = Field(None, description="Over edited suggestions.")


class KpiGroup(BaseModel):
    conversations: int
    first_response: Percentiles
    resolution: Percentiles
    sla_cycles: int
    sla_met_pct: float | None = None
    csat_responses: int
    csat_mean: float | None = None
    csat_pct: float | None = Field(None, description="Share of 4–5 answers, in %.")
    nps_responses: int
    nps: float | None = Field(None, description="% promoters (9–10) − % detractors (0–6).")
    suggestions: SuggestionRates


class KpiRead(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime
    overall: KpiGroup
    per_intent: dict[str, KpiGroup]
    model_config = ConfigDict(populate_by_name=True)
