"""Chatwoot webhooks → `ParsedWebhook`, and suggestions posted back as private notes.

Chatwoot (v4+) can sign webhooks:
`X-Chatwoot-Signature: sha256=HMAC-SHA256(secret, "{X-Chatwoot-Timestamp}.{body}")`;
ReplyDesk verifies it when `REPLYDESK_CHATWOOT_WEBHOOK_SECRET` is set. Notes go through Chatwoot's API
(`POST /api/v1/accounts/{account}/conversations/{id}/messages`, `private: true`) with an `api_access_token`.

`parse_chatwoot` reads the events of Chatwoot's docs "Webhook Events" (payloads: `Message#webhook_data`,
`Conversation#webhook_data`, `Attachment#push_event_data` in Chatwoot's source). Conversation
`chatwoot:{account_id}:{conversation display id}`, customer `chatwoot:{account_id}:{contact id}`, message
ids `chatwoot:{account_id}:{message id}` (the id `ChatwootReplies` gets back for what it posts). The
channel is the inbox's (`conversation.channel`, e.g. `Channel::Whatsapp` → whatsapp).
- `message_created`, `incoming` → `MessageCreate`: content; attachments image / audio / video / file (url,
  file name from the url), location (`geo:` url from coordinates_lat/long, fallback_title), fallback (a
  shared link: type `link`), contact (type `contact`, fallback_title), Instagram share / story types;
  `content_attributes.in_reply_to` → `reply_to`.
- `message_created`, `outgoing`, not private, sent by a person (sender type `user`) → `ExternalReplyCreate`
  (an agent answered in Chatwoot).
- `message_updated` of an outgoing message with status delivered / read / failed → `ChannelReceipt`
  (`content_attributes.external_error` → error).
- `conversation_status_changed` to resolved / open → `StatusChange`.
- Skipped: `chatwoot.private_note` (notes, ReplyDesk's own included), `chatwoot.bot_message` (sent by an
  agent bot or Captain: ReplyDesk's replies posted with an agent-bot token come back this way),
  `chatwoot.automated` (automation rules, campaigns), `chatwoot.template` / `chatwoot.activity` (Chatwoot's
  own form prompts and activity lines), `chatwoot.empty` (nothing to store), `chatwoot.message_updated`
  (other updates), `chatwoot.conversation_status_changed` (pending / snoozed), `chatwoot.<event>` for the
  other events (conversation_created, conversation_updated, contact_created...), `chatwoot.malformed` (no
  account or conversation id).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from service.errors import InvalidInput
from service.integrations.adapters.parsed import (
    ChannelReceipt,
    ParsedWebhook,
    StatusChange,
    add_message,
    add_reply,
    attachment,
    clip,
    obj,
    objs,
    string,
    unix_time,
)
from service.triage.models import Channel
from service.workflow.models import Attachment, ReceiptStatus

log = logging.getLogger("replydesk.chatwoot")

CHANNELS = {
    "Channel::Whatsapp": Channel.whatsapp,
    "Channel::FacebookPage": Channel.messenger,
    "Channel::Instagram": Channel.instagram,
    "Channel::Sms": Channel.sms,
    "Channel::TwilioSms": Channel.sms,
    "Channel::WebWidget": Channel.webchat,
    "Channel::Email": Channel.email,
    "Channel::Api": Channel.other,
    "Channel::Telegram": Channel.other,
}
# Chatwoot's Message#message_type enum, sent as its name by webhooks and as its number in nested messages.
MESSAGE_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
BOT_SENDERS = ("agent_bot", "captain_assistant")
RECEIPTS = {"delivered": ReceiptStatus.delivered, "read": ReceiptStatus.read, "failed": ReceiptStatus.failed}
OTHER_EVENTS = (
    "conversation_created",
    "conversation_updated",
    "conversation_opened",
    "conversation_resolved",
    "conversation_typing_on",
    "conversation_typing_off",
    "contact_created",
    "contact_updated",
    "webwidget_triggered",
    "inbox_created",
    "inbox_updated",
)


@dataclass
class ChatwootParsed:
    """A parsed Chatwoot webhook, with the ids needed to post a note back to its conversation."""

    webhook: ParsedWebhook
    account_id: int | None = None
    conversation_id: int | None = None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value) or None
    return None


def _when(value: Any, now: datetime) -> datetime:
    """Chatwoot sends `created_at` as ISO 8601 (`2021-07-23T18:02:48.000Z`), as `2020-03-03 13:05:57 UTC`,
    or as unix seconds; `now` when it is none of these."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return unix_time(value, now)
    if isinstance(value, str) and value:
        text = value.strip().replace("Z", "+00:00").replace(" UTC", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return now
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return now


def _file_name(url: str) -> str | None:
    """ActiveStorage urls end with the blob's file name (`.../redirect/<key>/invoice.pdf`)."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) if url else ""
    return name if "." in name else None


def _attachment(a: dict[str, Any]) -> Attachment | None:
    kind = string(a.get("file_type"))
    url = string(a.get("data_url"))
    title = a.get("fallback_title")
    if kind == "location":
        lat, long = a.get("coordinates_lat"), a.get("coordinates_long")
        numbers = isinstance(lat, int | float) and isinstance(long, int | float)
        geo = f"geo:{lat},{long}" if numbers else None
        data = (
            {"latitude": lat, "longitude": long, "title": string(title)}
            if numbers
            else {"title": string(title)}
        )
        return attachment("location", url=geo or url, caption=title, data=data)
    if kind == "fallback":
        return attachment("link", url=url, caption=title)
    if kind == "contact":
        meta = obj(a.get("meta"))
        return attachment("contact", caption=title, data={"name": string(title), **meta})
    if kind in ("image", "audio", "video", "file"):
        return attachment(kind, url=url, filename=_file_name(url))
    if kind in ("share", "ig_reel", "ig_post", "embed"):
        return attachment("share", url=url, data={"kind": kind})
    if kind in ("story_mention", "ig_story"):
        return attachment("story", url=url, data={"mention": kind == "story_mention"})
    return attachment("file", url=url, filename=_file_name(url), data={"kind": kind[:40]})


def _message_type(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return MESSAGE_TYPES.get(value, "")
    return string(value)


def _message_created(
    payload: dict[str, Any], ids: tuple[int, int], channel: Channel, now: datetime, out: ParsedWebhook
) -> None:
    account_id, conv_id = ids
    kind = _message_type(payload.get("message_type"))
    sender = obj(payload.get("sender"))
    message_id = _int(payload.get("id"))
    if payload.get("private"):
        out.skip("chatwoot.private_note", "a private note is not sent to the customer")
        return
    if kind in ("activity", "template"):
        out.skip(f"chatwoot.{kind}", f"{kind} message generated by Chatwoot")
        return
    if kind not in ("incoming", "outgoing") or message_id is None:
        out.skip("chatwoot.malformed", f"message without an id or of type {kind[:20]!r}")
        return
    content_attrs, extra = obj(payload.get("content_attributes")), obj(payload.get("additional_attributes"))
    attachments = [_attachment(a) for a in objs(payload.get("attachments"))]
    text = string(payload.get("content"))
    if not text.strip() and not any(attachments):
        out.skip("chatwoot.empty", "message without content or attachments")
        return
    common: dict[str, Any] = {
        "channel": channel,
        "conversation_external_id": f"chatwoot:{account_id}:{conv_id}",
        "text": text,
        "attachments": attachments,
        "channel_message_id": f"chatwoot:{account_id}:{message_id}",
    }
    if kind == "outgoing":
        if string(sender.get("type")) in BOT_SENDERS:
            out.skip("chatwoot.bot_message", "sent by an agent bot (ReplyDesk's replies come back this way)")
        elif content_attrs.get("automation_rule_id") or extra.get("campaign_id"):
            out.skip("chatwoot.automated", "sent by an automation rule or a campaign")
        else:
            author = string(sender.get("name")) or f"chatwoot user {string(sender.get('id'))}"
            add_reply(
                out,
                "chatwoot.malformed",
                **common,
                sent_at=_when(payload.get("created_at"), now),
                author=author[:100],
            )
        return
    conv = obj(payload.get("conversation"))
    conv_attrs, sender_attrs = (
        obj(conv.get("additional_attributes")),
        obj(sender.get("additional_attributes")),
    )
    locale = string(conv_attrs.get("browser_language")) or string(sender_attrs.get("locale"))
    country = string(sender_attrs.get("country_code"))
    in_reply_to = _int(content_attrs.get("in_reply_to"))
    add_message(
        out,
        "chatwoot.malformed",
        **common,
        customer={
            "id": f"chatwoot:{account_id}:{string(sender.get('id')) or 'unknown'}",
            "name": clip(sender.get("name"), 200),
            "locale": locale[:35] or None,
            "country": country if len(country) == 2 else None,
        },
        sent_at=_when(payload.get("created_at"), now),
        reply_to=f"chatwoot:{account_id}:{in_reply_to}" if in_reply_to else None,
    )


def _message_updated(payload: dict[str, Any], account_id: int, now: datetime, out: ParsedWebhook) -> None:
    status = RECEIPTS.get(string(payload.get("status")))
    message_id = _int(payload.get("id"))
    kind = _message_type(payload.get("message_type"))
    if status is None or message_id is None or kind != "outgoing" or payload.get("private"):
        out.skip("chatwoot.message_updated", "not a delivery status of a message sent to the customer")
        return
    error = clip(obj(payload.get("content_attributes")).get("external_error"), 1000)
    at = _when(payload.get("updated_at"), now)
    out.receipts.append(
        ChannelReceipt(
            f"chatwoot:{account_id}:{message_id}",
            status,
            at,
            error if status is ReceiptStatus.failed else None,
        )
    )


def _account_of(payload: dict[str, Any]) -> int | None:
    """`message_*` events carry `account.id`; conversation events only their messages' `account_id` (and
    `account_id` in some Chatwoot versions)."""
    found = _int(obj(payload.get("account")).get("id")) or _int(payload.get("account_id"))
    for m in objs(payload.get("messages")):
        found = found or _int(m.get("account_id"))
    return found


def parse_chatwoot(payload: dict[str, Any], now: datetime) -> ChatwootParsed:
    """Customer messages, agents' replies, delivery statuses and status changes of a Chatwoot webhook."""
    event = payload.get("event")
    if not isinstance(event, str) or not event:
        raise InvalidInput("not a Chatwoot webhook (no `event`)")
    account_id = _account_of(payload)
    is_message = event in ("message_created", "message_updated")
    conv = obj(payload.get("conversation")) if is_message else payload
    conv_id = _int(conv.get("id"))
    channel = CHANNELS.get(string(conv.get("channel")), Channel.other)
    parsed = ChatwootParsed(ParsedWebhook(channel=channel.value), account_id, conv_id)
    out = parsed.webhook
    known = is_message or event == "conversation_status_changed"
    if known and (account_id is None or conv_id is None):
        out.skip("chatwoot.malformed", f"{event} without an account id or a conversation id")
    elif event == "message_created" and account_id and conv_id:
        _message_created(payload, (account_id, conv_id), channel, now, out)
    elif event == "message_updated" and account_id:
        _message_updated(payload, account_id, now, out)
    elif event == "conversation_status_changed":
        status = string(payload.get("status"))
        if status in ("resolved", "open"):
            at = unix_time(payload.get("updated_at"), now)
            out.status_changes.append(StatusChange(f"chatwoot:{account_id}:{conv_id}", status, at))
        else:
            out.skip(
                "chatwoot.conversation_status_changed", f"status {status[:20]!r} is not resolved or open"
            )
    else:
        name = event if event in OTHER_EVENTS else "other"
        out.skip(f"chatwoot.{name}", f"event {event[:40]!r} is not acted on")
    return parsed


class ChatwootReplies:
    """Posts an approved reply into its Chatwoot conversation as an outgoing message (the dispatcher's
    `chatwoot:` transport), so the customer gets it on whatever channel Chatwoot serves and the agent sees it
    in Chatwoot's thread. Chatwoot's API: `POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/
    messages` with `{"content", "message_type": "outgoing", "private": false}` and the `api_access_token`
    header (developers.chatwoot.com, Application API › Messages › Create New Message). The webhook Chatwoot
    then sends for it (`message_type: outgoing`) is not ingested (`parse_message_created`)."""

    prefix = "chatwoot:"

    def __init__(
        self, base_url: str, token: str, *, timeout_s: float = 10.0, client: httpx.Client | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.client = client or httpx.Client(timeout=timeout_s)

    def post(self, envelope: dict[str, Any]) -> httpx.Response:
        data = envelope.get("data") or {}
        external_id = str((data.get("conversation") or {}).get("external_id") or "")
        text = str((data.get("message") or {}).get("text") or "")
        ids = chatwoot_ids(external_id)
        if ids is None:
            # not retryable: an answer the dispatcher counts as a failed attempt, with the reason
            return httpx.Response(422, json={"error": f"not a Chatwoot conversation id: {external_id!r}"})
        account_id, conversation_id = ids
        url = f"{self.base_url}/api/v1/accounts/{account_id}/conversations/{conversation_id}/messages"
        response = self.client.post(
            url,
            headers={"api_access_token": self.token},
            json={"content": text, "message_type": "outgoing", "private": False},
        )
        if not response.is_success:
            return response
        try:
            posted = response.json()
        except ValueError:
            posted = {}
        message_id = posted.get("id") if isinstance(posted, dict) else None
        body = {"channel_message_id": f"chatwoot:{account_id}:{message_id}"} if message_id else {}
        return httpx.Response(200, json=body)

    def close(self) -> None:
        self.client.close()


def chatwoot_ids(external_id: str) -> tuple[str, str] | None:
    """(account id, conversation id) of a conversation kept as `chatwoot:{account}:{conversation}`."""
    parts = external_id.split(":")
    if len(parts) != 3 or parts[0] != "chatwoot" or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return parts[1], parts[2]


def note_content(data: dict[str, Any]) -> str:
    """The note: intent and urgency, then the drafts numbered with their suggestion ids."""
    head = "ReplyDesk suggestions"
    if data.get("intent"):
        head += f" · intent {data['intent']} · urgency {data.get('urgency', '?')}"
    lines = [head]
    for sug in data.get("suggestions") or []:
        if isinstance(sug, dict):
            lines.append(f"{sug.get('rank')}) {sug.get('text')}  [suggestion {sug.get('id')}]")
    return "\n".join(lines)


class ChatwootNoteTransport:
    prefix = "chatwoot-note:"

    def __init__(
        self, base_url: str, token: str, *, timeout_s: float = 10.0, client: httpx.Client | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.client = client or httpx.Client(timeout=timeout_s)

    def post(self, envelope: dict[str, Any]) -> httpx.Response:
        data = envelope.get("data") or {}
        if not data.get("suggestions"):
            return httpx.Response(200, json={})  # nothing to show: done
        ids = chatwoot_ids(str((data.get("conversation") or {}).get("external_id") or ""))
        if ids is None:
            return httpx.Response(422, json={"error": "not a Chatwoot conversation"})
        account_id, conversation_id = ids
        url = f"{self.base_url}/api/v1/accounts/{account_id}/conversations/{conversation_id}/messages"
        response = self.client.post(
            url,
            headers={"api_access_token": self.token},
            json={"content": note_content(data), "message_type": "outgoing", "private": True},
        )
        # the note is no message to the customer: no channel_message_id to record
        return httpx.Response(200, json={}) if response.is_success else response

    def close(self) -> None:
        self.client.close()
