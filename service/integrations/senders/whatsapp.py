"""Replies sent through the WhatsApp Cloud API, and the customer's messages marked read there (blue ticks).

Send: `POST {graph}/{phone_number_id}/messages` with `Authorization: Bearer {token}` and
`{"messaging_product": "whatsapp", "recipient_type": "individual", "to": wa_id, "type": "text",
"text": {"preview_url": bool, "body": text}}`; Meta answers `{"messaging_product", "contacts": [{"input",
"wa_id"}], "messages": [{"id": "wamid..."}]}` (developers.facebook.com: WhatsApp Cloud API › Messages ›
Send messages / Text messages). A customer who hides their number behind a username is known only by a
business-scoped user id (`US.13491208655302741918`): that goes in `recipient` instead of `to` (WhatsApp Cloud
API › Business-scoped user IDs › Messages API). A template (outside the 24-hour customer service window):
`"type": "template", "template": {"name", "language": {"code"}, "components": [{"type": "body",
"parameters": [{"type": "text", "text"}]}]}` (Cloud API › Send message templates).

Mark read: `POST {graph}/{phone_number_id}/messages` with `{"messaging_product": "whatsapp", "status":
"read", "message_id": "wamid..."}`; Meta answers `{"success": true}` and marks that message and every earlier
one in the thread read (Cloud API › Mark messages as read).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from service.integrations.senders.common import (
    EnvelopeTemplate,
    OutboundData,
    ReadData,
    delivered,
    envelope_data,
    json_body,
    thread_parts,
)
from service.integrations.senders.graph import GraphError, graph_failure
from service.workflow.webhooks import PermanentFailure

PLATFORM = "WhatsApp"
TOKEN_SETTING = "REPLYDESK_WHATSAPP_ACCESS_TOKEN"
PATTERN = "wa:{phone_number_id}:{wa_id or business-scoped user id}"
PHONE = re.compile(r"^\+?\d{5,20}$")  # a wa_id (digits, country code first)
BSUID = re.compile(r"^[A-Za-z]{2}\.[A-Za-z0-9.]{1,160}$")  # "US.13491208655302741918"
URL = re.compile(r"https?://\S", re.IGNORECASE)
MAX_TEXT = 4096  # Cloud API › Text messages: body up to 4096 characters

TEMPLATE_CODES = frozenset({132000, 132001, 132005, 132007, 132012, 132015, 132016, 132068, 132069})
WINDOW_REASON = (
    "WhatsApp refused a free-form reply: more than 24 hours since the customer's last message (131047). "
    "Send an approved template instead."
)


def explain(error: GraphError) -> str | None:
    """The agent-facing sentence for a permanent WhatsApp Cloud API error (Cloud API › Error codes)."""
    code, said = error.code, error.said
    if code == 131047:
        return WINDOW_REASON
    if code == 131026:
        return (
            f"WhatsApp could not deliver the message (131026): {said}. The customer may not use WhatsApp "
            "any more, may have blocked the business, or may need to update WhatsApp; reach them another way."
        )
    if code == 131051:
        return f"WhatsApp does not support this message type (131051): {said}"
    if code == 131062:
        return (
            "WhatsApp cannot send this message to a customer known only by a business-scoped user id "
            f"(131062): {said}"
        )
    if code == 131050:
        return f"The customer stopped marketing messages from this business (131050): {said}"
    if code in TEMPLATE_CODES:
        return (
            f"WhatsApp refused the template ({code}): {said}. Check its name, language and number of "
            "parameters in WhatsApp Manager (it must be approved and active)."
        )
    if code in (100, 131008, 131009, 33):
        return f"WhatsApp refused the request as invalid ({code}): {said}"
    if code in (368, 131031):
        return f"The WhatsApp Business Account is restricted ({code}): {said}"
    return None


def recipient(customer: str) -> dict[str, str]:
    """`to` for a phone number (wa_id); `recipient` for a business-scoped user id."""
    if PHONE.match(customer):
        return {"to": customer}
    if BSUID.match(customer):
        return {"recipient": customer}
    raise PermanentFailure(
        None,
        f"the WhatsApp customer {customer[:80]!r} is neither a phone number nor a business-scoped user id",
    )


def template_object(template: EnvelopeTemplate) -> dict[str, Any]:
    body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if template.parameters:
        body["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in template.parameters]}
        ]
    return body


class _CloudAPI:
    def __init__(
        self,
        graph_url: str,
        access_token: str,
        *,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.graph_url = graph_url.rstrip("/")
        self.access_token = access_token
        self.client = client or httpx.Client(timeout=timeout_s)

    def _post(self, phone_number_id: str, body: dict[str, Any]) -> httpx.Response:
        return self.client.post(
            f"{self.graph_url}/{phone_number_id}/messages",
            headers={"Authorization": f"Bearer {self.access_token}"},
            json=body,
        )

    def _failure(self, response: httpx.Response) -> httpx.Response:
        return graph_failure(
            response,
            platform=PLATFORM,
            token_setting=TOKEN_SETTING,
            explain=explain,
            secrets=[self.access_token],
        )

    def close(self) -> None:
        self.client.close()


class WhatsAppCloudSender(_CloudAPI):
    """The dispatcher's `wa:` transport: sends a `message.outbound` reply (or its template) to the customer
    of a `wa:{phone_number_id}:{customer}` conversation and answers with the `wamid` Meta gave it."""

    prefix = "wa:"

    def accepts(self, external_id: str) -> bool:
        """Whether `external_id` is a conversation this sender can reach (the Cloud API webhook's shape)."""
        try:
            _, customer = thread_parts(external_id, self.prefix, PLATFORM, PATTERN)
            recipient(customer)
        except PermanentFailure:
            return False
        return True

    def post(self, envelope: dict[str, Any]) -> httpx.Response:
        data = envelope_data(envelope, OutboundData)
        phone_number_id, customer = thread_parts(
            data.conversation.external_id, self.prefix, PLATFORM, PATTERN
        )
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        body.update(recipient(customer))
        if data.template is not None:
            body.update(type="template", template=template_object(data.template))
        else:
            text = data.message.text
            if not text.strip():
                raise PermanentFailure(None, "the reply has no text to send on WhatsApp")
            if len(text) > MAX_TEXT:
                raise PermanentFailure(
                    None, f"the reply is {len(text)} characters; WhatsApp takes at most {MAX_TEXT}"
                )
            body.update(type="text", text={"preview_url": bool(URL.search(text)), "body": text})
        response = self._post(phone_number_id, body)
        if not response.is_success:
            return self._failure(response)
        messages = json_body(response).get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        return delivered(wamid if isinstance(wamid, str) else None)


class WhatsAppReadMarker(_CloudAPI):
    """The dispatcher's `wa-read:` transport: an agent read a WhatsApp customer's messages (`message.read`),
    so the newest of them is marked read on WhatsApp, which marks the earlier ones too."""

    prefix = "wa-read:"

    def post(self, envelope: dict[str, Any]) -> httpx.Response:
        data = envelope_data(envelope, ReadData)
        phone_number_id, _ = thread_parts(
            data.conversation.external_id, WhatsAppCloudSender.prefix, PLATFORM, PATTERN
        )
        latest = data.channel_message_ids[-1] if data.channel_message_ids else None
        if latest is None:
            return delivered(None)  # nothing WhatsApp knows by id: nothing to mark
        response = self._post(
            phone_number_id, {"messaging_product": "whatsapp", "status": "read", "message_id": latest}
        )
        if not response.is_success:
            return self._failure(response)
        return delivered(None)
