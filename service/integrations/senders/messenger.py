"""Replies sent through the Messenger Platform's Send API: to Messenger (`fb:{page_id}:{psid}`) and to
Instagram (`ig:{ig_account_id}:{igsid}`), both with the Page access token.

Messenger: `POST {graph}/{page_id}/messages` with `{"recipient": {"id": psid}, "messaging_type": "RESPONSE",
"message": {"text": text}}`; Meta answers `{"recipient_id", "message_id"}` (developers.facebook.com:
Messenger Platform › Send API reference). Instagram (Messenger API support for Instagram, the Page linked to
the Instagram professional account): `POST {graph}/me/messages` with `{"recipient": {"id": igsid},
"message": {"text": text}}` and the same answer (Instagram Messaging › Send a Message). `me` is the Page the
token belongs to: the Instagram account's id is not a Page id. The token goes in an `Authorization: Bearer`
header (Graph takes it there as well as in `access_token`), so it never appears in a URL.

Both allow a free-form reply only within 24 hours of the customer's last message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import httpx

from service.integrations.senders.common import (
    DIGITS,
    OutboundData,
    delivered,
    envelope_data,
    json_body,
    thread_parts,
    unreachable,
)
from service.integrations.senders.graph import GraphError, graph_failure
from service.workflow.webhooks import PermanentFailure

TOKEN_SETTING = "REPLYDESK_MESSENGER_PAGE_ACCESS_TOKEN"
# Messenger Platform › Error codes: "This message is sent outside of allowed window" (code 10).
WINDOW_SUBCODES = frozenset({2018278, 2534022})
# "No matching user found" (code 100).
NO_USER_SUBCODES = frozenset({2018001, 2534014})


class _SendAPI(ABC):
    prefix: str
    platform: ClassVar[str]
    pattern: ClassVar[str]
    account_name: ClassVar[str]
    max_text: ClassVar[int]
    text_unit: ClassVar[str]  # "characters" | "bytes" (of UTF-8)

    def __init__(
        self,
        graph_url: str,
        page_access_token: str,
        *,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.graph_url = graph_url.rstrip("/")
        self.page_access_token = page_access_token
        self.client = client or httpx.Client(timeout=timeout_s)

    @abstractmethod
    def endpoint(self, account: str) -> str: ...

    @abstractmethod
    def request(self, user: str, text: str) -> dict[str, Any]: ...

    def accepts(self, external_id: str) -> bool:
        """Whether `external_id` is a conversation this sender can reach (the webhook's shape)."""
        try:
            self._thread(external_id)
        except PermanentFailure:
            return False
        return True

    def _thread(self, external_id: str) -> tuple[str, str]:
        account, user = thread_parts(external_id, self.prefix, self.platform, self.pattern)
        if not DIGITS.match(user):
            raise unreachable(self.platform, external_id, self.pattern)
        return account, user

    def explain(self, error: GraphError) -> str | None:
        code, sub, said = error.code, error.error_subcode, error.said
        if error.error_subcode in WINDOW_SUBCODES:
            return (
                f"{self.platform} refused the reply: more than 24 hours since the customer's last message "
                f"({code}/{sub}). {self.platform} only takes replies within 24 hours of the customer's last "
                "message; it can be sent once they write again."
            )
        if code == 551 or sub == 1545041:
            return (
                f"The customer can't be reached on {self.platform} right now ({code}): they may have blocked "
                f"the {self.account_name} or turned off its messages."
            )
        if code == 100 and sub in NO_USER_SUBCODES:
            return (
                f"{self.platform} knows no such customer for this {self.account_name} ({code}/{sub}): {said}"
            )
        if code == 100:
            return f"{self.platform} refused the request as invalid ({code}): {said}"
        return None

    def post(self, envelope: dict[str, Any]) -> httpx.Response:
        data = envelope_data(envelope, OutboundData)
        account, user = self._thread(data.conversation.external_id)
        text = data.message.text
        if not text.strip():
            raise PermanentFailure(None, f"the reply has no text to send on {self.platform}")
        size = len(text.encode("utf-8")) if self.text_unit == "bytes" else len(text)
        if size > self.max_text:
            raise PermanentFailure(
                None,
                f"the reply is {size} {self.text_unit}; {self.platform} takes at most {self.max_text}",
            )
        response = self.client.post(
            self.endpoint(account),
            headers={"Authorization": f"Bearer {self.page_access_token}"},
            json=self.request(user, text),
        )
        if not response.is_success:
            return graph_failure(
                response,
                platform=self.platform,
                token_setting=TOKEN_SETTING,
                explain=self.explain,
                secrets=[self.page_access_token],
            )
        message_id = json_body(response).get("message_id")
        return delivered(message_id if isinstance(message_id, str) else None)

    def close(self) -> None:
        self.client.close()


class MessengerSender(_SendAPI):
    """The dispatcher's `fb:` transport: sends a reply to the customer (PSID) of an `fb:{page_id}:{psid}`
    conversation as that Page, and answers with Meta's `message_id` (`m_…`)."""

    prefix = "fb:"
    platform = "Messenger"
    pattern = "fb:{page_id}:{psid}"
    account_name = "Page"
    max_text = 2000  # Send API reference: message.text, UTF-8, up to 2000 characters
    text_unit = "characters"

    def endpoint(self, account: str) -> str:
        return f"{self.graph_url}/{account}/messages"

    def request(self, user: str, text: str) -> dict[str, Any]:
        return {"recipient": {"id": user}, "messaging_type": "RESPONSE", "message": {"text": text}}


class InstagramSender(_SendAPI):
    """The dispatcher's `ig:` transport: sends a reply to the customer (IGSID) of an
    `ig:{ig_account_id}:{igsid}` conversation through the Page linked to that Instagram account."""

    prefix = "ig:"
    platform = "Instagram"
    pattern = "ig:{ig_account_id}:{igsid}"
    account_name = "Instagram account"
    max_text = 1000  # Instagram Messaging › Send a Message: text UTF-8, 1000 bytes or less
    text_unit = "bytes"

    def endpoint(self, account: str) -> str:
        return f"{self.graph_url}/me/messages"

    def request(self, user: str, text: str) -> dict[str, Any]:
        return {"recipient": {"id": user}, "message": {"text": text}}
