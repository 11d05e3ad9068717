"""Twilio Programmable Messaging webhooks (SMS, MMS, WhatsApp) → `ParsedWebhook`.

Twilio posts `application/x-www-form-urlencoded` forms signed with `X-Twilio-Signature`
(`service.signing.verify_twilio_signature`). One URL can receive both kinds of request Twilio sends (Twilio
docs "Twilio's request to your incoming message Webhook URL" and "Outbound Message Status in Status
Callbacks"): an incoming message (`SmsStatus=received`, with `Body`, `NumMedia`...) and a status callback for
a message ReplyDesk sent (`MessageStatus` = queued, sent, delivered, read, failed...). A form with a
`MessageStatus` other than received / receiving is a status callback. Twilio sends no timestamp: `now`.

The channel is `whatsapp` when `From` starts with `whatsapp:`, else `sms` (for a status callback `From` is our
sender, so `ParsedWebhook.channel` is the channel of the outbound message). Conversation
`twilio:{To}/{From}` (To = our number, From = the customer, both exactly as Twilio sends them, e.g.
`twilio:whatsapp:+15550001111/whatsapp:+447700900123`); customer id = From.
- Incoming (→ `MessageCreate`): `Body`; `NumMedia` / `MediaUrl{n}` / `MediaContentType{n}` (image, video,
  audio, else file, with the mime type); WhatsApp `ProfileName` (customer name), `WaId`; shared location
  `Latitude` / `Longitude` / `Address` / `Label` (`geo:` url); quick-reply `ButtonText` / `ButtonPayload`
  (type `button`); click-to-WhatsApp ad `Referral*` (type `referral`); `OriginalRepliedMessageSid` →
  `reply_to`. Country: `FromCountry` (SMS) or the number's.
- Status callbacks (→ `ChannelReceipt`): sent → sent, delivered, read, failed / undelivered → failed with
  `ErrorCode` (and `ErrorMessage` when Twilio sends one).
- Skipped: `twilio.status.<status>` for queued, accepted, sending, scheduled, canceled, partially_delivered
  (not a delivery outcome), `twilio.status.unknown` (a status Twilio may add), `twilio.unsupported` (an
  incoming message with nothing ReplyDesk can show), `twilio.malformed` (a message that does not validate).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import phonenumbers

from service.errors import InvalidInput
from service.integrations.adapters.parsed import (
    ChannelReceipt,
    ParsedWebhook,
    add_message,
    attachment,
    clip,
)
from service.triage.models import Channel
from service.workflow.models import Attachment, ReceiptStatus

RECEIPTS = {
    "sent": ReceiptStatus.sent,
    "delivered": ReceiptStatus.delivered,
    "read": ReceiptStatus.read,
    "failed": ReceiptStatus.failed,
    "undelivered": ReceiptStatus.failed,
}
NOT_OUTCOMES = ("queued", "accepted", "sending", "scheduled", "canceled", "partially_delivered")
INBOUND = ("received", "receiving")
MAX_MEDIA = 10  # Twilio: up to 10 media per message
# Click-to-WhatsApp ad parameters (`Referral…`) → the data keys WhatsApp's own `referral` uses.
REFERRAL = {
    "SourceType": "source_type",
    "SourceId": "source_id",
    "Headline": "headline",
    "Body": "body",
    "MediaId": "media_id",
    "MediaContentType": "media_type",
    "CtwaClid": "ctwa_clid",
}


def _channel(address: str) -> Channel:
    return Channel.whatsapp if address.startswith("whatsapp:") else Channel.sms


def _country(form: Mapping[str, str], customer: str) -> str | None:
    given = form.get("FromCountry", "")
    if len(given) == 2 and given.isalpha():
        return given.upper()
    try:
        region = phonenumbers.region_code_for_number(
            phonenumbers.parse(customer.partition(":")[2] or customer)
        )
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


def _media(form: Mapping[str, str]) -> list[Attachment | None]:
    try:
        count = min(int(form.get("NumMedia", "0") or 0), MAX_MEDIA)
    except ValueError:
        count = 0
    media = []
    for n in range(max(count, 0)):
        mime = form.get(f"MediaContentType{n}", "")
        major = mime.partition("/")[0]
        kind = major if major in ("image", "video", "audio") else "file"
        media.append(attachment(kind, url=form.get(f"MediaUrl{n}"), mime_type=mime))
    return media


def _extras(form: Mapping[str, str]) -> list[Attachment | None]:
    extras: list[Attachment | None] = []
    lat, long = form.get("Latitude", ""), form.get("Longitude", "")
    if lat and long:
        label, address = form.get("Label", ""), form.get("Address", "")
        data = {"latitude": lat, "longitude": long, "name": label, "address": address}
        extras.append(attachment("location", url=f"geo:{lat},{long}", caption=label or address, data=data))
    if form.get("ButtonPayload") or form.get("ButtonText"):
        text = form.get("ButtonText", "")
        extras.append(
            attachment("button", caption=text, data={"payload": form.get("ButtonPayload", ""), "text": text})
        )
    referral = {name: form.get(f"Referral{param}", "") for param, name in REFERRAL.items()}
    if any(referral.values()) or form.get("ReferralSourceUrl"):
        extras.append(
            attachment(
                "referral",
                url=form.get("ReferralSourceUrl"),
                caption=form.get("ReferralHeadline"),
                data=referral,
            )
        )
    return extras


def _status(form: Mapping[str, str], sid: str, status: str, now: datetime, out: ParsedWebhook) -> None:
    receipt = RECEIPTS.get(status)
    if receipt is None:
        name = status if status in NOT_OUTCOMES else "unknown"
        out.skip(f"twilio.status.{name}", f"status {status[:40]!r} is not a delivery outcome")
        return
    code = clip(form.get("ErrorCode"), 40) if receipt is ReceiptStatus.failed else None
    error = None
    if receipt is ReceiptStatus.failed:
        error = clip(form.get("ErrorMessage"), 1000) or (
            f"Twilio error {code} ({status})" if code else status
        )
    out.receipts.append(ChannelReceipt(sid, receipt, now, error, code))


def parse_twilio(form: Mapping[str, str], now: datetime) -> ParsedWebhook:
    """An incoming message or a status callback of Twilio Programmable Messaging."""
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid") or ""
    sender, to = form.get("From", ""), form.get("To", "")
    if not sid or not sender or not to:
        raise InvalidInput("not a Twilio messaging webhook (MessageSid, From and To are required)")
    out = ParsedWebhook(channel=_channel(sender).value)
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if status and status not in INBOUND:
        _status(form, sid[:200], status, now, out)
        return out
    attachments = _media(form) + _extras(form)
    text = form.get("Body", "") or form.get("ButtonText", "")
    if not text.strip() and not any(attachments):
        kind = form.get("MessageType", "")
        out.skip("twilio.unsupported", f"message without body or media (MessageType {kind[:40]!r})")
        return out
    fields: dict[str, Any] = {
        "channel": _channel(sender),
        "conversation_external_id": f"twilio:{to}/{sender}",
        "customer": {
            "id": sender,
            "name": clip(form.get("ProfileName"), 200),
            "country": _country(form, sender),
        },
        "text": text,
        "sent_at": now,
        "attachments": attachments,
        "channel_message_id": sid,
        "reply_to": clip(form.get("OriginalRepliedMessageSid"), 200),
    }
    add_message(out, "twilio.malformed", **fields)
    return out
