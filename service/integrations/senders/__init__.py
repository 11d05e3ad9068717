"""Sending replies through the channels' own APIs, for a team without a helpdesk in between.

Each sender is a transport of the outbox dispatcher (`service.workflow.webhooks.Transport`), registered under
the conversation-id prefix it serves: a `message.outbound` event of a `wa:…` conversation is posted through
the WhatsApp Cloud API instead of the signed webhook, and so on. A sender answers 200 with the message's id on
the channel, a failed answer the dispatcher retries (rate limits, outages), or raises `PermanentFailure` for a
refusal no retry can fix (outside the 24-hour window, unsubscribed, invalid token...).

Channels (`REPLYDESK_CHANNEL_SEND`), their prefix, sender and credentials:

* `whatsapp`: `wa:` `WhatsAppCloudSender`, and `wa-read:` `WhatsAppReadMarker` when `whatsapp_mark_read` is
  on; `REPLYDESK_WHATSAPP_ACCESS_TOKEN`.
* `messenger`: `fb:` `MessengerSender`; `REPLYDESK_MESSENGER_PAGE_ACCESS_TOKEN`.
* `instagram`: `ig:` `InstagramSender`; `REPLYDESK_MESSENGER_PAGE_ACCESS_TOKEN`.
* `twilio`: `twilio:` `TwilioSender`; `REPLYDESK_TWILIO_ACCOUNT_SID` and `REPLYDESK_TWILIO_AUTH_TOKEN`.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from service.integrations.senders.messenger import InstagramSender, MessengerSender
from service.integrations.senders.twilio import TwilioSender
from service.integrations.senders.whatsapp import WhatsAppCloudSender, WhatsAppReadMarker
from service.settings import Settings

__all__ = [
    "ChannelSender",
    "InstagramSender",
    "MessengerSender",
    "TwilioSender",
    "WhatsAppCloudSender",
    "WhatsAppReadMarker",
    "channel_senders",
    "missing_credentials",
]


class ChannelSender(Protocol):
    """A dispatcher transport for one channel, registered under its `prefix`."""

    prefix: str

    def post(self, envelope: dict[str, Any]) -> httpx.Response: ...

    def close(self) -> None: ...


_CREDENTIALS = {
    "whatsapp": ("REPLYDESK_WHATSAPP_ACCESS_TOKEN",),
    "messenger": ("REPLYDESK_MESSENGER_PAGE_ACCESS_TOKEN",),
    "instagram": ("REPLYDESK_MESSENGER_PAGE_ACCESS_TOKEN",),
    "twilio": ("REPLYDESK_TWILIO_ACCOUNT_SID", "REPLYDESK_TWILIO_AUTH_TOKEN"),
}


def _missing(s: Settings, channel: str) -> list[str]:
    values = {
        "REPLYDESK_WHATSAPP_ACCESS_TOKEN": s.whatsapp_access_token,
        "REPLYDESK_MESSENGER_PAGE_ACCESS_TOKEN": s.messenger_page_access_token,
        "REPLYDESK_TWILIO_ACCOUNT_SID": s.twilio_account_sid,
        "REPLYDESK_TWILIO_AUTH_TOKEN": s.twilio_auth_token,
    }
    return [name for name in _CREDENTIALS[channel] if not values[name]]


def channel_senders(s: Settings) -> list[ChannelSender]:
    """A sender for each channel in `channel_send` whose credentials are set (plus WhatsApp's read marker when
    `whatsapp_mark_read` is on); a channel without them is left to the webhook (`missing_credentials`)."""
    timeout = s.webhook_timeout_s
    senders: list[ChannelSender] = []
    channels = set(s.channel_send)
    if "whatsapp" in channels and s.whatsapp_access_token:
        senders.append(WhatsAppCloudSender(s.meta_graph_url, s.whatsapp_access_token, timeout_s=timeout))
        if s.whatsapp_mark_read:
            senders.append(WhatsAppReadMarker(s.meta_graph_url, s.whatsapp_access_token, timeout_s=timeout))
    if "messenger" in channels and s.messenger_page_access_token:
        senders.append(MessengerSender(s.meta_graph_url, s.messenger_page_access_token, timeout_s=timeout))
    if "instagram" in channels and s.messenger_page_access_token:
        senders.append(InstagramSender(s.meta_graph_url, s.messenger_page_access_token, timeout_s=timeout))
    if "twilio" in channels and s.twilio_account_sid and s.twilio_auth_token:
        senders.append(
            TwilioSender(s.twilio_api_url, s.twilio_account_sid, s.twilio_auth_token, timeout_s=timeout)
        )
    return senders


def missing_credentials(s: Settings) -> list[dict[str, str]]:
    """A start-up warning (`code`, `message`) for each channel in `channel_send` whose credentials are
    missing: its replies keep going out by webhook (or stay queued without one)."""
    found = []
    for channel in dict.fromkeys(s.channel_send):
        missing = _missing(s, channel)
        if missing:
            found.append(
                {
                    "code": f"channel_send_{channel}_without_credentials",
                    "message": f"REPLYDESK_CHANNEL_SEND lists {channel} but {' and '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not set: {channel} replies are not sent through "
                    "the channel; they go out by the outbound webhook (or stay queued without one)",
                }
            )
    return found
