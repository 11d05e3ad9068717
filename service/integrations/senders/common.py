"""What every channel sender shares: the envelope fields it reads (validated), the conversation id split into
its parts, the answers the dispatcher understands, and keeping credentials out of every reason it gives."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.redaction import MASK, redact
from service.workflow.webhooks import PermanentFailure

DIGITS = re.compile(r"^\d{1,40}$")

Model = TypeVar("Model", bound=BaseModel)


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EnvelopeConversation(_Loose):
    id: int | None = None
    channel: str | None = None
    external_id: str = Field(min_length=1)


class EnvelopeMessage(_Loose):
    text: str = ""


class EnvelopeTemplate(_Loose):
    """An approved WhatsApp template to send instead of the text (outside the 24-hour window)."""

    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=20)  # "en_US", "pt_BR", "es"
    parameters: list[str] = Field(default_factory=list)


class OutboundData(_Loose):
    """`data` of a `message.outbound` event (`service.workflow.outbound.queue_outbound`)."""

    message: EnvelopeMessage
    conversation: EnvelopeConversation
    template: EnvelopeTemplate | None = None


class ReadData(_Loose):
    """`data` of a `message.read` event: the agent read these inbound messages (ids in order)."""

    message_ids: list[int] = Field(default_factory=list)
    channel_message_ids: list[str] = Field(default_factory=list)
    by: str | None = None
    conversation: EnvelopeConversation


def envelope_data(envelope: dict[str, Any], model: type[Model]) -> Model:
    """The envelope's `data` as `model`; a shape no retry will change is a `PermanentFailure`."""
    try:
        return model.model_validate(envelope.get("data") or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'data'}: {err['msg']}" for err in exc.errors()[:3]
        )
        raise PermanentFailure(
            None, f"the {envelope.get('type') or 'event'} event is malformed: {problems}"
        ) from exc


def unreachable(platform: str, external_id: str, pattern: str) -> PermanentFailure:
    """The refusal for a conversation id the sender cannot send to, with the shape it should have."""
    return PermanentFailure(
        None, f"{platform} cannot send to conversation {external_id[:200]!r}: its id must look like {pattern}"
    )


def thread_parts(
    external_id: str, prefix: str, platform: str, pattern: str, *, account_digits: bool = True
) -> tuple[str, str]:
    """`prefix{account}:{user}` → (account, user), e.g. `wa:{phone_number_id}:{wa_id}`. Anything else is a
    `PermanentFailure` naming the expected `pattern`. The account is a Meta id (digits) when `account_digits`;
    the user part may not contain whitespace, `/`, `?` or `#`."""
    rest = external_id[len(prefix) :] if external_id.startswith(prefix) else None
    account, sep, user = (rest or "").partition(":")
    if (
        rest is None
        or not sep
        or not account
        or not user
        or (account_digits and not DIGITS.match(account))
        or re.search(r"[\s/?#]", user)
    ):
        raise unreachable(platform, external_id, pattern)
    return account, user


def delivered(channel_message_id: str | None) -> httpx.Response:
    """The answer the dispatcher counts as delivered, naming the message on the channel when known."""
    return httpx.Response(200, json={"channel_message_id": channel_message_id} if channel_message_id else {})


def retry(status_code: int, reason: str) -> httpx.Response:
    """A failed answer the dispatcher retries with backoff, recording `reason` with the status."""
    return httpx.Response(status_code if status_code >= 400 else 502, json={"error": reason})


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when it has none."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` credential-redacted, with every configured secret value masked even where no key names it
    (a platform that echoes the token it refused)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return redact(text)
