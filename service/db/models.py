"""Tables of the workflow: keys, customers, conversations, messages, suggestions, SLA cycles, events, webhook
deliveries, surveys and LLM calls. Every schema change goes through an Alembic revision in
`service/migrations`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from service.clock import ensure_utc

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER PRIMARY KEY (rowid alias, autoincrement) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone, so it is re-attached on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = ensure_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else ensure_utc(value)


# Predicates of the partial indexes (the same SQL in migration 0006).
UNREAD = "direction = 'inbound' AND agent_read_at IS NULL"
DECIDED = "decision IS NOT NULL"
ANSWERED = "score IS NOT NULL"
REPLIED = "reply_message_id IS NOT NULL"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    rate_limit: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(35))
    country: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        Index("ix_conversations_status", "status"),
        Index("ix_conversations_assigned", "assigned_key_id"),
        # growth (0006): the KPIs' time windows, and a helpdesk's thread id without its channel
        Index("ix_conversations_first_message", "first_customer_message_at"),
        Index("ix_conversations_resolved_at", "resolved_at"),
        Index("ix_conversations_external", "external_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    urgency: Mapped[str] = mapped_column(String(16), default="normal")
    intent: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_customer_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_customer_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_agent_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    awaiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    current_sla_id: Mapped[int | None] = mapped_column(BigId)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Who works it (an agent key's name; the key id keeps "mine" exact when two keys share a name).
    assigned_to: Mapped[str | None] = mapped_column(String(100))
    assigned_key_id: Mapped[str | None] = mapped_column(String(32))
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "channel_message_id"),
        UniqueConstraint("idempotency_key"),
        Index("ix_messages_conversation", "conversation_id", "id"),
        Index("ix_messages_pipeline", "pipeline_status", "pipeline_lease_until"),
        # growth (0006): helpdesks pulling `?status=queued` in id order; the queue's unread counts
        Index("ix_messages_status", "status", "id"),
        Index(
            "ix_messages_unread",
            "conversation_id",
            sqlite_where=text(UNREAD),
            postgresql_where=text(UNREAD),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    channel: Mapped[str] = mapped_column(String(20))
    direction: Mapped[str] = mapped_column(String(8))  # inbound | outbound
    kind: Mapped[str] = mapped_column(String(16))  # customer | reply | survey
    channel_message_id: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    author: Mapped[str | None] = mapped_column(String(100))
    author_key_id: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # received | queued | sent | delivered | read | failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    customer_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(40))  # the channel's code for a failed message
    reply_to: Mapped[str | None] = mapped_column(String(200))  # channel message id this one quotes
    agent_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    agent_read_by: Mapped[str | None] = mapped_column(String(100))
    suggestion_id: Mapped[int | None] = mapped_column(BigId)
    pipeline_status: Mapped[str | None] = mapped_column(String(16))  # pending | done | failed | skipped
    pipeline_error: Mapped[str | None] = mapped_column(Text)
    # While `pending`: when a run that has not finished by then counts as stranded (the process died) and may
    # be re-run; every run claims the message by moving this forward (see workflow/recovery.py).
    pipeline_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pipeline_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    triage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    facts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class Suggestion(Base):
    __tablename__ = "suggestions"
    __table_args__ = (
        Index("ix_suggestions_status", "status"),
        Index("ix_suggestions_conversation", "conversation_id"),
        # growth (0006): a message's drafts (every ingest answers with them); (0010, replacing 0006's
        # `ix_suggestions_decided`) the KPIs' decisions by time, covering what they read
        Index(
            "ix_suggestions_decisions",
            "decided_at",
            "decision",
            "intent",
            "edit_distance",
            sqlite_where=text(DECIDED),
            postgresql_where=text(DECIDED),
        ),
        Index("ix_suggestions_message", "message_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    rank: Mapped[int] = mapped_column(Integer)
    draft_text: Mapped[str] = mapped_column(Text)
    final_text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    decision: Mapped[str | None] = mapped_column(
        String(16)
    )  # approved | edited | rejected (kept after `sent`)
    intent: Mapped[str | None] = mapped_column(String(64))
    intent_confidence: Mapped[float | None] = mapped_column(Float)
    language: Mapped[str | None] = mapped_column(String(16))
    generator: Mapped[str | None] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_by_key_id: Mapped[str | None] = mapped_column(String(32))
    edit_distance: Mapped[int | None] = mapped_column(Integer)
    reject_reason: Mapped[str | None] = mapped_column(Text)
    tone_findings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    tone_override_reason: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outbound_message_id: Mapped[int | None] = mapped_column(BigId)


class SlaCycle(Base):
    """One wait of the customer for an answer (first response, then each next response)."""

    __tablename__ = "sla_cycles"
    __table_args__ = (
        Index("ix_sla_cycles_open", "responded_at"),
        # growth (0010, replacing 0006's `ix_sla_cycles_started`): the KPIs' waits by start, covering what
        # they read
        Index("ix_sla_cycles_window", "started_at", "conversation_id", "due_at", "responded_at", "met"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    message_id: Mapped[int | None] = mapped_column(BigId)  # the customer message that started the wait
    kind: Mapped[str] = mapped_column(String(16))  # first_response | next_response
    urgency: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    at_risk_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[str | None] = mapped_column(String(16))  # reply | resolve
    met: Mapped[bool | None] = mapped_column(Boolean)
    at_risk_emitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    breached_emitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Event(Base):
    """Append-only log of what happened; the SSE stream reads it by id, webhooks deliver it."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("dedupe_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(40))
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    message_id: Mapped[int | None] = mapped_column(BigId)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    dedupe_key: Mapped[str | None] = mapped_column(String(200))


class PendingReceipt(Base):
    """A channel status for a message id ReplyDesk does not know yet (the helpdesk had not reported the id
    when the status came). Applied by the worker once an outbound message has that id; dropped after
    `pending_receipt_ttl_s`."""

    __tablename__ = "pending_receipts"
    __table_args__ = (
        Index("ix_pending_receipts_message", "channel", "channel_message_id"),
        Index("ix_pending_receipts_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(20))
    channel_message_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConversationViewer(Base):
    """An agent who has a conversation open now: one row per (conversation, key), its heartbeat in
    `seen_at` (the console renews it while the page is open)."""

    __tablename__ = "conversation_viewers"

    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """Outbox row: one event to POST to the helpdesk (or to hand to a transport), retried with backoff until
    delivered or given up. Claimed by `priority` (0 replies to customers, 1 alerts to act on, 2
    informational), then `next_attempt_at`; at most `delivery_per_receiver` in flight per `receiver` (the
    URL's scheme://host:port, or the transport's name)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "priority", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), unique=True)
    url: Mapped[str] = mapped_column(Text)
    receiver: Mapped[str] = mapped_column(String(300))
    priority: Mapped[int] = mapped_column(SmallInteger, default=2)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Survey(Base):
    __tablename__ = "surveys"
    __table_args__ = (
        Index("ix_surveys_conversation", "conversation_id"),
        # growth (0006): the KPIs' answers by time; the survey a message answered (every ingest asks)
        Index(
            "ix_surveys_answered", "answered_at", sqlite_where=text(ANSWERED), postgresql_where=text(ANSWERED)
        ),
        Index(
            "ix_surveys_reply_message",
            "reply_message_id",
            sqlite_where=text(REPLIED),
            postgresql_where=text(REPLIED),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    kind: Mapped[str] = mapped_column(String(8))  # csat | nps
    locale: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[int | None] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(16), default="sent")  # sent | answered | commented
    score: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    reply_message_id: Mapped[int | None] = mapped_column(BigId)
    intent: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # `survey:<conversation id>:<opened_at>` (0007): one survey per resolution, however many processes try;
    # a unique index (ix_surveys_dedupe_key), so SQLite adds it without rebuilding the table
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, index=True)


class LLMCall(Base):
    __tablename__ = "llm_calls"
    __table_args__ = (Index("ix_llm_calls_created", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    model: Mapped[str] = mapped_column(String(200))
    prompt_name: Mapped[str | None] = mapped_column(String(100))
    prompt_version: Mapped[str | None] = mapped_column(String(100))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    total_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    message_id: Mapped[int | None] = mapped_column(BigId)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WorkerHeartbeat(Base):
    """A process running the background loops (`replydesk serve` with workers enabled, or `replydesk
    worker`), renewed every few seconds; /health counts the fresh ones (service/workflow/heartbeat.py)."""

    __tablename__ = "worker_heartbeats"
    __table_args__ = (Index("ix_worker_heartbeats_seen", "last_seen_at"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid:random
    kind: Mapped[str] = mapped_column(String(16))  # serve | worker
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
