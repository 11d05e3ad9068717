"""What a channel webhook carried, platform-neutral: the parsers (`meta`, `twilio`, `chatwoot`) turn a
platform's payload into a `ParsedWebhook`; `ingest_webhook.apply` stores it. Parsers never raise on an event
they do not understand: they record it in `skipped` (counted and logged, `/metrics`
`replydesk_channel_events_skipped_total`), so one odd event never loses the customer messages batched with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from service.triage.models import MAX_TEXT_CHARS
from service.workflow.models import Attachment, ExternalReplyCreate, MessageCreate, ReceiptStatus

MAX_ATTACHMENTS = 10  # MessageBase.attachments


@dataclass(frozen=True)
class ChannelReceipt:
    """A status of a message sent to the customer, named by the channel's message id."""

    channel_message_id: str
    status: ReceiptStatus
    at: datetime
    error: str | None = None  # the platform's title/message, e.g. "Re-engagement message"
    error_code: str | None = None  # e.g. WhatsApp "131047", Twilio "30008"


@dataclass(frozen=True)
class Watermark:
    """Messenger/Instagram `delivery`/`read` without message ids: every message sent to the thread up to
    `at` has reached `status`."""

    conversation_external_id: str
    at: datetime
    status: ReceiptStatus = ReceiptStatus.read


# Kept for the name the adapters used before (a read watermark).
ReadWatermark = Watermark


@dataclass(frozen=True)
class StatusChange:
    """The helpdesk resolved (or reopened) a conversation."""

    conversation_external_id: str
    status: str  # "resolved" | "open"
    at: datetime
    by: str | None = None


@dataclass(frozen=True)
class Skipped:
    """An event ReplyDesk does not act on; `type` is a short stable name (`messenger.standby`,
    `whatsapp.unsupported`, `chatwoot.conversation_created`...) used as the metric label."""

    type: str
    reason: str


@dataclass
class ParsedWebhook:
    channel: str  # where the receipts' message ids live: "whatsapp", "messenger", "instagram", "sms"...
    messages: list[MessageCreate] = field(default_factory=list)
    receipts: list[ChannelReceipt] = field(default_factory=list)
    watermarks: list[Watermark] = field(default_factory=list)
    replies: list[ExternalReplyCreate] = field(default_factory=list)  # echoes / agent replies elsewhere
    status_changes: list[StatusChange] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def skip(self, type_: str, reason: str) -> None:
        self.skipped.append(Skipped(type_, reason))


# -- helpers the parsers share: untrusted JSON in, validated models out, never an exception for one event ----


def obj(value: Any) -> dict[str, Any]:
    """A JSON object from an untrusted payload, or {} when it is something else."""
    return value if isinstance(value, dict) else {}


def objs(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON array (other items dropped), or [] when it is not an array."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def string(value: Any) -> str:
    """A string field, or "" (numbers become their text: ids are sometimes sent as numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def clip(value: Any, limit: int) -> str | None:
    """A non-empty string field cut to `limit` characters, else None."""
    text = string(value).strip()
    return text[:limit] or None


def unix_time(value: Any, now: datetime, *, millis: bool = False) -> datetime:
    """A unix timestamp (seconds, or milliseconds with `millis`, as a number or digits); `now` when it is
    missing or not a usable time: a message is never lost for its timestamp."""
    try:
        seconds = float(value) / (1000 if millis else 1)
        if not math.isfinite(seconds) or seconds <= 0:
            return now
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return now


def attachment(
    type_: str,
    *,
    url: Any = None,
    caption: Any = None,
    filename: Any = None,
    mime_type: Any = None,
    data: dict[str, Any] | None = None,
) -> Attachment | None:
    """An `Attachment`, its text fields cut to the model's limits; None when nothing is left to show (a url
    over 2000 characters is dropped rather than cut: a cut link does not open)."""
    link = string(url).strip()
    clean = {k: v for k, v in (data or {}).items() if v not in (None, "", [], {})}
    if data is not None and "emoji" in data:
        clean["emoji"] = data["emoji"]  # "" means a reaction was removed: keep it
    try:
        return Attachment(
            type=type_[:20],
            url=link if 0 < len(link) <= 2000 else None,
            caption=clip(caption, 1000),
            filename=clip(filename, 300),
            mime_type=clip(mime_type, 100),
            data=clean or None,
        )
    except ValidationError:
        return None


def cut_text(value: Any) -> str:
    """Message text cut to the service's limit (a long message is kept, shortened, rather than lost)."""
    return string(value)[:MAX_TEXT_CHARS]


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "message"
    return f"{where}: {first.get('msg', 'invalid')}"


def add_message(out: ParsedWebhook, skip_type: str, **fields: Any) -> MessageCreate | None:
    """Builds a customer message into `out.messages`; one that does not validate (no content, an id over
    200 characters...) is recorded as skipped under `skip_type`, never raised."""
    fields["attachments"] = [a for a in fields.get("attachments", []) if a is not None][:MAX_ATTACHMENTS]
    fields["text"] = cut_text(fields.get("text"))
    try:
        msg = MessageCreate(**fields)
    except ValidationError as exc:
        out.skip(skip_type, f"message not usable: {_problem(exc)}")
        return None
    out.messages.append(msg)
    return msg


def add_reply(out: ParsedWebhook, skip_type: str, **fields: Any) -> ExternalReplyCreate | None:
    """Builds a reply sent outside ReplyDesk into `out.replies`; one without any content or that does not
    validate is recorded as skipped under `skip_type`."""
    fields["attachments"] = [a for a in fields.get("attachments", []) if a is not None][:MAX_ATTACHMENTS]
    fields["text"] = cut_text(fields.get("text"))
    try:
        reply = ExternalReplyCreate(**fields)
    except ValidationError as exc:
        out.skip(skip_type, f"reply not usable: {_problem(exc)}")
        return None
    if not reply.text and not reply.attachments:
        out.skip(skip_type, "reply without text or attachments")
        return None
    out.replies.append(reply)
    return reply
