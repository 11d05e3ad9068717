"""Replies sent through Twilio's Messages API (SMS, and WhatsApp or Messenger through Twilio).

`POST {api}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP basic auth `AccountSid:AuthToken`, form
fields `From`, `To`, `Body`; Twilio answers `201 Created` with the Message resource (`{"sid": "SM…",
"status": "queued", …}`) (twilio.com/docs: Messaging › API › Message resource › Create a Message resource).
A refusal is `{"code", "message", "more_info", "status"}` (Twilio API responses › Errors).

A conversation is `twilio:{To}/{From}` as Twilio's webhook named them: To is our number, From the customer's
(`+15551234567`, `whatsapp:+15551234567`, `messenger:…`), so a reply goes From=To and To=From.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from service.integrations.senders.common import (
    OutboundData,
    delivered,
    envelope_data,
    json_body,
    retry,
    scrub,
    unreachable,
)
from service.workflow.webhooks import PermanentFailure

PATTERN = "twilio:{our address}/{customer address}"
ADDRESS = re.compile(r"^[A-Za-z0-9_+:.@\-]{3,200}$")
MAX_TEXT = 1600  # Message resource › Body: up to 1600 characters
RETRIED_CODES = frozenset({20429, 20500, 20503})  # too many requests, internal error, service unavailable


class TwilioError(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: int | None = None
    message: str = ""
    more_info: str | None = None
    status: int | None = None


def explain(error: TwilioError) -> str:
    """The agent-facing sentence for a Twilio refusal (twilio.com/docs/api/errors/{code})."""
    code, said = error.code, error.message or "no message"
    if code == 63016:
        return (
            "WhatsApp refused a free-form reply: more than 24 hours since the customer's last message "
            "(63016). Send an approved template instead (a Twilio Content template)."
        )
    if code == 21610:
        return (
            "The customer unsubscribed from this number by replying STOP (21610): Twilio sends them nothing "
            "until they reply START."
        )
    if code == 21211:
        return f"Twilio says the customer's 'To' address is not a valid phone number (21211): {said}"
    if code in (21612, 21614, 21408):
        return f"Twilio cannot deliver to the customer's number ({code}): {said}"
    if code in (21606, 21659, 21660, 63007):
        return f"Twilio cannot send from this conversation's number ({code}): {said}"
    if code in (20003, 20404):
        return (
            f"Twilio refused the credentials or account ({code}): {said}. Check "
            "REPLYDESK_TWILIO_ACCOUNT_SID and REPLYDESK_TWILIO_AUTH_TOKEN."
        )
    return f"Twilio refused the message ({code}): {said}"


def thread(external_id: str) -> tuple[str, str]:
    """`twilio:{To}/{From}` → (our address, the customer's address)."""
    rest = external_id.removeprefix("twilio:") if external_id.startswith("twilio:") else ""
    ours, _, customer = rest.partition("/")
    if not (ADDRESS.match(ours) and ADDRESS.match(customer)):
        raise unreachable("Twilio", external_id, PATTERN)
    return ours, customer


class TwilioSender:
    """The dispatcher's `twilio:` transport: sends a reply from our number to the customer of a
    `twilio:{To}/{From}` conversation and answers with the Message SID (`SM…`)."""

    prefix = "twilio:"

    def __init__(
        self,
        api_url: str,
        account_sid: str,
        auth_token: str,
        *,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.client = client or httpx.Client(timeout=timeout_s)

    def accepts(self, external_id: str) -> bool:
        """Whether `external_id` is a conversation this sender can reach (the webhook's shape)."""
        try:
            thread(external_id)
        except PermanentFailure:
            return False
        return True

    def post(self, envelope: dict[str, Any]) -> httpx.Response:
        data = envelope_data(envelope, OutboundData)
        ours, customer = thread(data.conversation.external_id)
        text = data.message.text
        if not text.strip():
            raise PermanentFailure(None, "the reply has no text to send through Twilio")
        if len(text) > MAX_TEXT:
            raise PermanentFailure(
                None, f"the reply is {len(text)} characters; Twilio takes at most {MAX_TEXT}"
            )
        response = self.client.post(
            f"{self.api_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json",
            auth=(self.account_sid, self.auth_token),
            data={"From": ours, "To": customer, "Body": text},
        )
        if response.is_success:
            sid = json_body(response).get("sid")
            return delivered(sid if isinstance(sid, str) else None)
        return self._failure(response)

    def _failure(self, response: httpx.Response) -> httpx.Response:
        status = response.status_code
        try:
            error = TwilioError.model_validate(json_body(response))
        except ValidationError:
            error = TwilioError()
        secrets = [self.auth_token]
        if error.code is None:
            return retry(status, f"Twilio answered HTTP {status} without an error code")
        if status == 429 or status >= 500 or error.code in RETRIED_CODES:
            return retry(status, scrub(f"Twilio temporary error ({error.code}): {error.message}", secrets))
        raise PermanentFailure(str(error.code), scrub(explain(error), secrets))

    def close(self) -> None:
        self.client.close()
