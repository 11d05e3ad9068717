"""WhatsApp Cloud API and Facebook Messenger webhook payloads → ReplyDesk messages and receipts.

Both are Meta webhooks: a GET handshake (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`) and POSTs
signed with `X-Hub-Signature-256: sha256=HMAC-SHA256(app_secret, raw body)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from pydantic import ValidationError

from service.errors import InvalidInput
from service.triage.models import Channel
from service.workflow.models import MessageCreate, ReceiptStatus

WHATSAPP_MEDIA = ("image", "video", "audio", "document", "sticker")


@dataclass(frozen=True)
class ChannelReceipt:
    channel_message_id: str
    status: ReceiptStatus
    at: datetime
    error: str | None = None


@dataclass(frozen=True)
class ReadWatermark:
    """Messenger `read`: every outbound message of the thread sent up to `at` has been read."""

    conversation_external_id: str
    at: datetime


@dataclass
class ParsedWebhook:
    messages: list[MessageCreate]
    receipts: list[ChannelReceipt]
    watermarks: list[ReadWatermark]
    skipped: int = 0


def _d(value: Any) -> dict[str, Any]:
    """A JSON object from an untrusted payload, or {} when it is something else."""
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def handshake(params: dict[str, str], expected_token: str | None) -> str | None:
    """The challenge to echo when the verify token matches, else None."""
    if (
        expected_token
        and params.get("hub.mode") == "subscribe"
        and params.get("hub.verify_token") == expected_token
    ):
        return params.get("hub.challenge", "")
    return None


def _unix(value: Any, *, millis: bool = False) -> datetime:
    try:
        seconds = float(value) / (1000 if millis else 1)
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise InvalidInput(f"timestamp {str(value)[:40]!r} is not a unix time") from exc


def _country_of(wa_id: str) -> str | None:
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse("+" + wa_id.lstrip("+")))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


def _message(**fields: Any) -> MessageCreate | None:
    try:
        return MessageCreate(**fields)
    except ValidationError:
        return None  # e.g. an empty message: nothing to ingest


def parse_whatsapp(payload: dict[str, Any]) -> ParsedWebhook:
    if payload.get("object") != "whatsapp_business_account":
        raise InvalidInput("not a WhatsApp Cloud API webhook (object must be `whatsapp_business_account`)")
    out = ParsedWebhook([], [], [])
    for entry in map(_d, _l(payload.get("entry"))):
        for change in map(_d, _l(entry.get("changes"))):
            value = _d(change.get("value"))
            if change.get("field") != "messages":
                out.skipped += 1
                continue
            phone_id = str(_d(value.get("metadata")).get("phone_number_id", ""))
            names = {
                c.get("wa_id"): _d(c.get("profile")).get("name") for c in map(_d, _l(value.get("contacts")))
            }
            for m in map(_d, _l(value.get("messages"))):
                sender = str(m.get("from", ""))
                kind = m.get("type")
                text, attachments = "", []
                if kind == "text":
                    text = _d(m.get("text")).get("body", "")
                elif kind in WHATSAPP_MEDIA:
                    media = _d(m.get(kind))
                    attachments.append(
                        dict(
                            type="file" if kind == "document" else kind,
                            url=f"whatsapp-media:{media.get('id', '')}"[:2000],
                            caption=(media.get("caption") or "")[:1000] or None,
                        )
                    )
                    text = media.get("caption") or ""
                elif kind == "location":
                    loc = _d(m.get("location"))
                    attachments.append(
                        dict(
                            type="location",
                            url=f"geo:{loc.get('latitude')},{loc.get('longitude')}",
                            caption=(loc.get("name") or loc.get("address") or "")[:1000] or None,
                        )
                    )
                elif kind == "interactive":
                    inter = _d(m.get("interactive"))
                    text = _d(inter.get("button_reply") or inter.get("list_reply")).get("title", "")
                elif kind == "button":
                    text = _d(m.get("button")).get("text", "")
                text = text if isinstance(text, str) else ""
                msg = _message(
                    channel=Channel.whatsapp,
                    conversation_external_id=f"wa:{phone_id}:{sender}",
                    customer=dict(
                        id=sender[:200],
                        name=(names.get(sender) or "")[:200] or None,
                        country=_country_of(sender),
                    ),
                    text=text,
                    sent_at=_unix(m.get("timestamp")),
                    attachments=attachments,
                    channel_message_id=m.get("id"),
                )
                if msg is None:
                    out.skipped += 1
                else:
                    out.messages.append(msg)
            for st in map(_d, _l(value.get("statuses"))):
                raw_status = st.get("status")
                try:
                    status = ReceiptStatus(raw_status if isinstance(raw_status, str) else "")
                except ValueError:
                    out.skipped += 1
                    continue
                errors = [e for e in _l(st.get("errors")) if isinstance(e, dict)]
                out.receipts.append(
                    ChannelReceipt(
                        channel_message_id=str(st.get("id")),
                        status=status,
                        at=_unix(st.get("timestamp")),
                        error=(errors[0].get("title") if errors else None),
                    )
                )
    return out


def parse_messenger(payload: dict[str, Any]) -> ParsedWebhook:
    if payload.get("object") != "page":
        raise InvalidInput("not a Messenger webhook (object must be `page`)")
    out = ParsedWebhook([], [], [])
    for entry in map(_d, _l(payload.get("entry"))):
        page_id = str(entry.get("id", ""))
        for ev in map(_d, _l(entry.get("messaging"))):
            psid = str(_d(ev.get("sender")).get("id", ""))
            thread = f"fb:{page_id}:{psid}"
            at = _unix(ev.get("timestamp"), millis=True)
            if "message" in ev:
                m = _d(ev["message"])
                if m.get("is_echo"):
                    out.skipped += 1  # our own outbound message coming back
                    continue
                attachments = []
                for a in map(_d, _l(m.get("attachments"))):
                    url = _d(a.get("payload")).get("url")
                    if isinstance(url, str) and 0 < len(url) <= 2000:
                        attachments.append(dict(type=str(a.get("type") or "file")[:20], url=url))
                text = m.get("text") if isinstance(m.get("text"), str) else ""
                msg = _message(
                    channel=Channel.messenger,
                    conversation_external_id=thread,
                    customer=dict(id=psid[:200] or "unknown"),
                    text=text,
                    sent_at=at,
                    attachments=attachments,
                    channel_message_id=m.get("mid"),
                )
                if msg is None:
                    out.skipped += 1
                else:
                    out.messages.append(msg)
            elif "delivery" in ev:
                for mid in _l(_d(ev["delivery"]).get("mids")):
                    out.receipts.append(
                        ChannelReceipt(channel_message_id=str(mid), status=ReceiptStatus.delivered, at=at)
                    )
            elif "read" in ev:
                watermark = _d(ev["read"]).get("watermark")
                out.watermarks.append(
                    ReadWatermark(thread, _unix(watermark, millis=True) if watermark else at)
                )
            else:
                out.skipped += 1
    return out
