"""Chatwoot `message_created` webhooks → ReplyDesk messages, and suggestions posted back as private notes.

Chatwoot (v4+) can sign webhooks:
`X-Chatwoot-Signature: sha256=HMAC-SHA256(secret, "{X-Chatwoot-Timestamp}.{body}")`;
ReplyDesk verifies it when `REPLYDESK_CHATWOOT_WEBHOOK_SECRET` is set. Notes go through Chatwoot's API
(`POST /api/v1/accounts/{account}/conversations/{id}/messages`, `private: true`) with an `api_access_token`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from service.errors import InvalidInput
from service.redaction import redact
from service.triage.models import Channel
from service.workflow.models import Attachment, CustomerIn, IngestRead, MessageCreate

log = logging.getLogger("replydesk.chatwoot")

CHANNELS = {
    "Channel::Whatsapp": Channel.whatsapp,
    "Channel::FacebookPage": Channel.messenger,
    "Channel::Sms": Channel.sms,
    "Channel::TwilioSms": Channel.sms,
    "Channel::WebWidget": Channel.webchat,
    "Channel::Email": Channel.email,
    "Channel::Api": Channel.other,
    "Channel::Telegram": Channel.other,
}


@dataclass(frozen=True)
class ChatwootMessage:
    account_id: int
    conversation_id: int
    message: MessageCreate


def _when(value: Any) -> datetime:
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise InvalidInput(f"created_at {value!r} is not a unix time") from exc
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(f"created_at {value!r} is not ISO 8601") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def parse_message_created(payload: dict[str, Any]) -> ChatwootMessage | None:
    """The customer message of a `message_created` event, or None for anything else (agent messages,
    notes...)."""
    if payload.get("event") != "message_created":
        return None
    if payload.get("message_type") not in ("incoming", 0) or payload.get("private"):
        return None
    conv, account, sender = (
        v if isinstance(v, dict) else {}
        for v in (payload.get("conversation"), payload.get("account"), payload.get("sender"))
    )
    if not conv.get("id") or not account.get("id") or not payload.get("id"):
        raise InvalidInput("Chatwoot payload lacks conversation.id, account.id or id")
    try:
        account_id, conv_id = int(account["id"]), int(conv["id"])
        attachments = [
            Attachment(type=str(a.get("file_type") or "file")[:20], url=a["data_url"])
            for a in payload.get("attachments") or []
            if isinstance(a, dict) and a.get("data_url")
        ]
    except (TypeError, ValueError) as exc:  # ValidationError is a ValueError
        raise InvalidInput(f"Chatwoot payload has a malformed id or attachment: {exc}") from exc
    conv_attrs, sender_attrs = (
        v if isinstance(v, dict) else {}
        for v in (conv.get("additional_attributes"), sender.get("additional_attributes"))
    )
    browser = conv_attrs.get("browser_language") or sender_attrs.get("locale")
    country = sender_attrs.get("country_code")
    content = payload.get("content")
    text = content if isinstance(content, str) else ""
    if not text.strip() and not attachments:
        return None
    try:
        msg = _message_create(payload, conv, sender, account_id, conv_id, text, attachments, browser, country)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"Chatwoot message is not usable: {field}: {first.get('msg')}") from exc
    return ChatwootMessage(account_id=account_id, conversation_id=conv_id, message=msg)


def _message_create(
    payload: dict[str, Any],
    conv: dict[str, Any],
    sender: dict[str, Any],
    account_id: int,
    conv_id: int,
    text: str,
    attachments: list[Attachment],
    browser: Any,
    country: Any,
) -> MessageCreate:
    return MessageCreate(
        channel=CHANNELS.get(conv.get("channel") or "", Channel.other),
        conversation_external_id=f"chatwoot:{account_id}:{conv_id}",
        customer=CustomerIn(
            id=f"chatwoot:{account_id}:{sender.get('id', 'unknown')}",
            name=sender.get("name"),
            locale=browser if isinstance(browser, str) and browser else None,
            country=country if isinstance(country, str) and len(country) == 2 else None,
        ),
        text=text,
        sent_at=_when(payload.get("created_at")),
        attachments=attachments,
        channel_message_id=f"chatwoot:{account_id}:{payload['id']}",
    )


def note_text(result: IngestRead) -> str:
    triage = result.triage
    head = "ReplyDesk suggestions"
    if triage is not None:
        head += f" · intent {triage.intent.name} · urgency {triage.urgency.level.value}"
    lines = [head]
    for sug in result.suggestions:
        lines.append(f"{sug.rank}) {sug.draft_text}  [suggestion {sug.id}]")
    for fact in result.facts:
        lines.append(f"ℹ {fact.text}")
    return "\n".join(lines)


class ChatwootNotes:
    """Posts the suggestions of a Chatwoot conversation back to it as one private note."""

    def __init__(
        self, base_url: str, token: str, *, timeout_s: float = 10.0, client: httpx.Client | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.Client(timeout=timeout_s)
        self.token = token

    def post(self, account_id: int, conversation_id: int, result: IngestRead) -> bool:
        if not result.suggestions:
            return False
        url = f"{self.base_url}/api/v1/accounts/{account_id}/conversations/{conversation_id}/messages"
        try:
            response = self.client.post(
                url,
                headers={"api_access_token": self.token},
                json={"content": note_text(result), "message_type": "outgoing", "private": True},
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning(
                "could not post Chatwoot note",
                extra={"conversation_id": conversation_id, "error": redact(str(exc))},
            )
            return False
        return True

    def close(self) -> None:
        self.client.close()


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
        parts = external_id.split(":")
        if len(parts) != 3 or parts[0] != "chatwoot" or not (parts[1].isdigit() and parts[2].isdigit()):
            # not retryable: an answer the dispatcher counts as a failed attempt, with the reason
            return httpx.Response(422, json={"error": f"not a Chatwoot conversation id: {external_id!r}"})
        account_id, conversation_id = parts[1], parts[2]
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
