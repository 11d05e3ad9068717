"""The OpenAPI schema, completed in one place: what FastAPI generates, plus what it cannot know.

- **Errors.** Every operation answers errors in the project's envelope (`service.errors.error_body`), so the
  schema says so for each of them. Which statuses an operation documents is decided by `error_answers` alone,
  from the route's properties: 401/403/429/503 behind a key (the key lookup reads the database), 404 for a
  path id, 413 for a method that carries a body, 422 where FastAPI validates input, 409 where the workflow
  raises `Conflict` (`CONFLICTS`). FastAPI's own `HTTPValidationError` (`{detail}`) is never sent, so it is
  not documented.
- **Security.** `/health` is public (`security: []`); channel callbacks also take the key as `?api_key=`
  (the `ApiKeyQuery` scheme) because the platforms cannot send an Authorization header.
- **Channel webhooks.** Those routes read their raw body (to verify the platform's signature over it), so
  FastAPI sees no body: `CHANNEL_WEBHOOKS` describes each by path (body, signature header, Meta's `hub.*`
  handshake). A path that is not mounted is skipped.
- **Outbound webhooks.** `OUTBOUND_EVENTS` is the one list of the events ReplyDesk POSTs to
  `REPLYDESK_WEBHOOK_URL` (also streamed by `GET /v1/events`), documented in the OpenAPI 3.1 `webhooks`
  section with the signed delivery headers.

This module sits in the bottom layer (`pyproject.toml`, import-linter), so it imports no capability: names
it shares with one (header names, event types) are checked against the code by tests/test_openapi_contract.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

Schema = dict[str, Any]

SCHEMAS = "#/components/schemas/"
ERROR_REF = {"$ref": SCHEMAS + "ErrorEnvelope"}
METHODS = ("get", "put", "post", "delete", "patch")
BEARER = "HTTPBearer"  # the scheme FastAPI names after `HTTPBearer` (service/auth/deps.py)
QUERY_KEY = "ApiKeyQuery"


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `invalid_input`, `forbidden`.")
    message: str = Field(description="What went wrong, for a person.")
    details: dict[str, Any] = Field(default_factory=dict, description="Structured context (may be empty).")


class ErrorEnvelope(BaseModel):
    """Every error the API answers: `{"error": {"code", "message", "details"}}`."""

    error: ErrorDetail


class WebhookEnvelope(BaseModel):
    """The body of every outbound webhook delivery (`service.workflow.webhooks.envelope`) and of every
    `GET /v1/events` server-sent event."""

    id: int = Field(
        description="Event id, increasing; also in `X-ReplyDesk-Event-Id`, the same on every retry."
    )
    type: str = Field(description="Event type, e.g. `message.received`; also in `X-ReplyDesk-Event`.")
    created_at: str = Field(description="When the event happened (ISO 8601, UTC).")
    conversation_id: int | None = Field(None, description="The conversation it concerns, if any.")
    message_id: int | None = Field(None, description="The message it concerns, if any.")
    data: dict[str, Any] = Field(description="The event's own fields: see each event.")


# -- error answers ---------------------------------------------------------------------------------------

RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}
UNAUTHORIZED = "No API key, or an invalid or revoked one (`unauthorized`)."
FORBIDDEN = "The key's role may not use this route (`forbidden`; details name the role and the allowed ones)."
RATE_LIMITED = "The key is over its rate limit (`rate_limited`; retry after `Retry-After` seconds)."
UNAVAILABLE = "The database is unavailable (`unavailable`; retry after `Retry-After` seconds)."
TOO_LARGE = "The request body is over `REPLYDESK_MAX_BODY_BYTES` (`payload_too_large`)."
NOT_FOUND = "No such resource (`not_found`)."
INVALID = "Invalid input (`invalid_input`; `details.problems` lists each field and what is wrong)."

# Operations whose workflow step raises `service.errors.Conflict` (409), and why.
CONFLICTS: dict[tuple[str, str], str] = {
    (
        "post",
        "/v1/messages/{message_id}/status",
    ): "Receipts are for outbound messages only, or the message kept "
    "changing under concurrent receipts (`conflict`; retry the receipt).",
    (
        "post",
        "/v1/messages/{message_id}/read",
    ): "Only inbound messages have an agent read state (`conflict`).",
    (
        "post",
        "/v1/suggestions/{suggestion_id}/approve",
    ): "The suggestion is no longer pending (`conflict`), or "
    "the text fails the tone check and no override reason was given (`tone_blocked`).",
    ("post", "/v1/suggestions/{suggestion_id}/send"): "The suggestion is not approved (nor already sent), or "
    "was sent by someone else meanwhile (`conflict`).",
    ("post", "/v1/suggestions/{suggestion_id}/reject"): "The suggestion is no longer pending (`conflict`).",
    (
        "post",
        "/v1/conversations/{conversation_id}/reply",
    ): "The text fails the tone check and no override reason was given (`tone_blocked`).",
    (
        "post",
        "/v1/conversations/{conversation_id}/resolve",
    ): "The conversation is already resolved (`conflict`).",
    (
        "post",
        "/v1/conversations/{conversation_id}/assign",
    ): "The conversation changed hands meanwhile (`conflict`; details name who has it now).",
    ("post", "/v1/surveys/{survey_id}/responses"): "The survey is already answered (`conflict`).",
}


@dataclass(frozen=True)
class Answer:
    """One documented error status: its description and response headers."""

    description: str
    headers: dict[str, Any] = field(default_factory=dict)


def error_answers(path: str, method: str, op: dict[str, Any], public: bool) -> dict[str, Answer]:
    """The error statuses an operation can really answer, from the route's properties (the one place that
    decides it): whether it needs a key, carries a body, names a resource in its path, validates input,
    or runs a workflow step that can conflict."""
    answers: dict[str, Answer] = {}
    if not public:
        answers["401"] = Answer(UNAUTHORIZED, {"WWW-Authenticate": {"schema": {"type": "string"}}})
        answers["403"] = Answer(FORBIDDEN)
        answers["429"] = Answer(RATE_LIMITED, RETRY_AFTER)
        answers["503"] = Answer(UNAVAILABLE, RETRY_AFTER)  # the key lookup reads the database
    if method in {"post", "put", "patch"} or "requestBody" in op:
        answers["413"] = Answer(TOO_LARGE)
    if "{" in path:
        answers["404"] = Answer(NOT_FOUND)
    if "422" in op.get("responses", {}) or op.get("parameters") or "requestBody" in op:
        answers["422"] = Answer(INVALID)
    if (method, path) in CONFLICTS:
        answers["409"] = Answer(CONFLICTS[(method, path)])
    return answers


def _envelope(answer: Answer, existing: dict[str, Any] | None) -> dict[str, Any]:
    """The documented response: the route's own description first (it is more specific), then ours."""
    response = dict(existing or {})
    own = response.get("description")
    if own and own != answer.description and answer.description not in own:
        response["description"] = f"{own} Also: {answer.description[0].lower()}{answer.description[1:]}"
    else:
        response["description"] = answer.description
    headers = {**answer.headers, **response.get("headers", {})}
    if headers:
        response["headers"] = headers
    content = dict(response.get("content") or {})
    content["application/json"] = {"schema": ERROR_REF}
    response["content"] = content
    return response


def _operations(schema: Schema) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def document_errors(schema: Schema, public_paths: frozenset[str]) -> None:
    """Add the envelope to every error response of every operation (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    envelope = ErrorEnvelope.model_json_schema(ref_template=SCHEMAS + "{model}")
    components.update(envelope.pop("$defs", {}))
    components["ErrorEnvelope"] = envelope
    for path, method, op in _operations(schema):
        responses = op.setdefault("responses", {})
        answers = error_answers(path, method, op, public=path in public_paths)
        for status, answer in answers.items():
            responses[status] = _envelope(answer, responses.get(status))
        for status, response in list(responses.items()):
            if status[0] in "45" and status not in answers:
                responses[status] = _envelope(Answer(response.get("description") or "Error"), response)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


# -- security --------------------------------------------------------------------------------------------


def document_security(
    schema: Schema, public_paths: frozenset[str], query_key_prefixes: tuple[str, ...]
) -> None:
    """`/health` needs no key; channel callbacks take it as a Bearer header or as `?api_key=`."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[QUERY_KEY] = {
        "type": "apiKey",
        "in": "query",
        "name": "api_key",
        "description": "The API key in the callback URL, for platforms that cannot send an Authorization "
        "header (Meta, Chatwoot, Twilio), e.g. "
        "`https://replydesk.example/v1/channels/whatsapp/webhook?api_key=rdk_...`. "
        "Accepted on `/v1/channels/...` routes only.",
    }
    for path, _method, op in _operations(schema):
        if path in public_paths:
            op["security"] = []
        elif path.startswith(query_key_prefixes):
            op["security"] = [{BEARER: []}, {QUERY_KEY: []}]


# -- channel webhooks (inbound) --------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureHeader:
    name: str
    description: str
    required: bool = True


@dataclass(frozen=True)
class ChannelWebhook:
    """What the platform POSTs to `path`, as it documents it; `handshake`: Meta's `GET` verification."""

    path: str
    platform: str
    doc: str  # where the platform documents the payload
    media_type: str
    body: Schema
    example: dict[str, Any]
    headers: tuple[SignatureHeader, ...]
    handshake: bool = False
    needs_secret: bool = True  # unset, the route answers 503 `adapter_not_configured`


HUB_SIGNATURE = SignatureHeader(
    "X-Hub-Signature-256",
    "`sha256=<hex HMAC-SHA256(app secret, raw body)>`, verified with `REPLYDESK_<CHANNEL>_APP_SECRET`.",
)


def _loose(description: str, properties: dict[str, Schema], required: list[str]) -> Schema:
    """A platform payload: the fields ReplyDesk reads, open to everything else the platform adds."""
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": required,
        "additionalProperties": True,
    }


_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_META_ENTRY: dict[str, Schema] = {"object": _STR, "entry": {"type": "array", "items": {"type": "object"}}}
_T_MS = 1767603600000  # 2026-01-05T09:00:00Z

CHANNEL_WEBHOOKS: tuple[ChannelWebhook, ...] = (
    ChannelWebhook(
        path="/v1/channels/whatsapp/webhook",
        platform="WhatsApp Cloud API",
        doc="Meta for Developers, WhatsApp Cloud API > Webhooks > `messages` (messages and statuses)",
        media_type="application/json",
        body=_loose(
            "A WhatsApp Business Account webhook: `object` is `whatsapp_business_account`.",
            _META_ENTRY,
            ["object", "entry"],
        ),
        # Shape: Meta's WhatsApp Cloud API webhook reference, `messages` field, text message example.
        example={
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
                                "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5215512345678"}],
                                "messages": [
                                    {
                                        "from": "5215512345678",
                                        "id": "wamid.HBgNNTIxNTUxMjM0NTY3OBUCABIYFjNFQjA=",
                                        "timestamp": "1767603600",
                                        "type": "text",
                                        "text": {"body": "¿Dónde está mi pedido 10482?"},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        },
        headers=(HUB_SIGNATURE,),
        handshake=True,
    ),
    ChannelWebhook(
        path="/v1/channels/messenger/webhook",
        platform="Messenger",
        doc="Meta for Developers, Messenger Platform > Webhooks > `messages`, `message_deliveries`, "
        "`message_reads`",
        media_type="application/json",
        body=_loose("A Messenger Platform webhook: `object` is `page`.", _META_ENTRY, ["object", "entry"]),
        # Shape: Meta's Messenger Platform webhook reference, `messages` event.
        example={
            "object": "page",
            "entry": [
                {
                    "id": "PAGE_ID",
                    "time": _T_MS,
                    "messaging": [
                        {
                            "sender": {"id": "PSID_5512345678"},
                            "recipient": {"id": "PAGE_ID"},
                            "timestamp": _T_MS,
                            "message": {"mid": "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM", "text": "Where is my order?"},
                        }
                    ],
                }
            ],
        },
        headers=(HUB_SIGNATURE,),
        handshake=True,
    ),
    ChannelWebhook(
        path="/v1/channels/instagram/webhook",
        platform="Instagram Messaging",
        doc="Meta for Developers, Instagram Platform > Webhook notification examples > Messaging payload",
        media_type="application/json",
        body=_loose(
            "An Instagram messaging webhook: `object` is `instagram`.", _META_ENTRY, ["object", "entry"]
        ),
        # Shape: Meta's Instagram Platform webhook notification examples, messaging payload (text message).
        example={
            "object": "instagram",
            "entry": [
                {
                    "id": "17841400000000000",
                    "time": _T_MS,
                    "messaging": [
                        {
                            "sender": {"id": "IGSID_1234567890"},
                            "recipient": {"id": "17841400000000000"},
                            "timestamp": _T_MS,
                            "message": {"mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx", "text": "Hola"},
                        }
                    ],
                }
            ],
        },
        headers=(HUB_SIGNATURE,),
        handshake=True,
    ),
    ChannelWebhook(
        path="/v1/channels/chatwoot/webhook",
        platform="Chatwoot",
        doc="Chatwoot docs, Webhooks > Supported webhook events > `message_created`",
        media_type="application/json",
        body=_loose(
            "A Chatwoot webhook: `message_created` (customer messages, agents' replies), `message_updated` "
            "(delivery statuses), `conversation_status_changed` (resolved / open); other events are counted "
            "as skipped.",
            {"event": _STR, "id": _INT, "content": {"type": ["string", "null"]}, "message_type": {}},
            ["event"],
        ),
        # Shape: Chatwoot's "How to use webhooks?" sample payload and the `message_created` event objects.
        example={
            "event": "message_created",
            "id": 4321,
            "content": "Hi, my order has not arrived",
            "created_at": "2026-01-05T09:00:00.000Z",
            "message_type": "incoming",
            "content_type": "text",
            "content_attributes": {},
            "private": False,
            "sender": {"id": 77, "name": "Ana", "type": "contact"},
            "inbox": {"id": 3, "name": "WhatsApp"},
            "conversation": {"id": 120, "inbox_id": 3, "channel": "Channel::Whatsapp"},
            "account": {"id": 1, "name": "Northwind"},
        },
        needs_secret=False,
        headers=(
            SignatureHeader(
                "X-Chatwoot-Signature",
                '`sha256=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>`; checked when '
                "`REPLYDESK_CHATWOOT_WEBHOOK_SECRET` is set.",
                required=False,
            ),
            SignatureHeader(
                "X-Chatwoot-Timestamp",
                "Unix seconds the signature was made at; refused more than 300 s away from now.",
                required=False,
            ),
        ),
    ),
    ChannelWebhook(
        path="/v1/channels/twilio/webhook",
        platform="Twilio (SMS and WhatsApp)",
        doc="Twilio docs, Messaging > Twilio's request to your incoming message Webhook URL; "
        "status callbacks",
        media_type="application/x-www-form-urlencoded",
        body=_loose(
            "Twilio's form-encoded request: an incoming message, or a status callback (`MessageStatus`).",
            {
                "MessageSid": _STR,
                "AccountSid": _STR,
                "MessagingServiceSid": _STR,
                "From": {
                    "type": "string",
                    "description": "Sender, e.g. `+14155550100` or `whatsapp:+5215512345678`.",
                },
                "To": _STR,
                "Body": {"type": "string", "description": "The message text (up to 1600 characters)."},
                "NumMedia": {
                    "type": "string",
                    "description": "How many `MediaUrl{N}` / `MediaContentType{N}` follow.",
                },
                "MediaUrl0": _STR,
                "MediaContentType0": _STR,
                "ProfileName": {"type": "string", "description": "WhatsApp only: the sender's profile name."},
                "WaId": {"type": "string", "description": "WhatsApp only: the sender's WhatsApp id."},
                "MessageStatus": {
                    "type": "string",
                    "description": "Status callbacks only: `queued`, `sent`, `delivered`, `read`, "
                    "`undelivered`, `failed`...",
                },
                "ErrorCode": {
                    "type": "string",
                    "description": "Status callbacks only, on failure, e.g. `30008`.",
                },
            },
            ["MessageSid", "AccountSid", "From", "To"],
        ),
        # Fields: Twilio's "Twilio's request to your incoming message Webhook URL" (WhatsApp parameters).
        example={
            "MessageSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
            "AccountSid": "AC00000000000000000000000000000000",
            "MessagingServiceSid": "MG00000000000000000000000000000000",
            "From": "whatsapp:+5215512345678",
            "To": "whatsapp:+14155238886",
            "Body": "Where is my order?",
            "NumMedia": "0",
            "ProfileName": "Ana",
            "WaId": "5215512345678",
        },
        headers=(
            SignatureHeader(
                "X-Twilio-Signature",
                "Base64 HMAC-SHA1 (auth token) of the public URL followed by the sorted form parameters, "
                "as Twilio documents in Webhooks security.",
            ),
        ),
    ),
)

HANDSHAKE_REFUSED = "`hub.mode` is not `subscribe` or `hub.verify_token` does not match (`forbidden`); or:"
HUB_PARAMETERS: tuple[Schema, ...] = (
    {
        "name": "hub.mode",
        "in": "query",
        "required": True,
        "description": "Always `subscribe` (Meta's webhook verification request).",
        "schema": {"type": "string", "enum": ["subscribe"]},
    },
    {
        "name": "hub.verify_token",
        "in": "query",
        "required": True,
        "description": "Must equal `REPLYDESK_<CHANNEL>_VERIFY_TOKEN`, else 403.",
        "schema": {"type": "string"},
        "example": "verify-me",
    },
    {
        "name": "hub.challenge",
        "in": "query",
        "required": True,
        "description": "Echoed back as the `text/plain` body when the token matches.",
        "schema": {"type": "string"},
        "example": "1158201444",
    },
)


def _add_parameters(op: dict[str, Any], parameters: list[Schema]) -> None:
    """Add each parameter the route does not declare already (names compared without case)."""
    params = op.setdefault("parameters", [])
    have = {(p.get("in"), str(p.get("name", "")).lower()) for p in params}
    for param in parameters:
        if (param["in"], param["name"].lower()) not in have:
            params.append(param)


NOT_CONFIGURED = (
    "The channel is not configured here (`adapter_not_configured`: its app secret, verify token or "
    "auth token is unset); or:"
)


def _prepend(op: dict[str, Any], status: str, text: str) -> None:
    """Put the route's specific reason before the general description of an error it documents."""
    response = op.get("responses", {}).get(status)
    if response is not None and text not in response["description"]:
        response["description"] = f"{text} {response['description']}"


def document_channel_webhooks(schema: Schema) -> None:
    """Bodies, signature headers and Meta's `hub.*` handshake of the channel callbacks that are mounted."""
    paths = schema.get("paths", {})
    for hook in CHANNEL_WEBHOOKS:
        item = paths.get(hook.path)
        if item is None:
            continue  # not mounted (yet)
        if "post" in item:
            post = item["post"]
            post.setdefault(
                "requestBody",
                {
                    "required": True,
                    "description": f"What {hook.platform} sends, as it documents it ({hook.doc}). "
                    "The signature covers the raw bytes, so send them unchanged.",
                    "content": {hook.media_type: {"schema": hook.body, "example": hook.example}},
                },
            )
            _add_parameters(
                post,
                [
                    {
                        "name": h.name,
                        "in": "header",
                        "required": h.required,
                        "description": h.description,
                        "schema": {"type": "string"},
                    }
                    for h in hook.headers
                ],
            )
            if hook.needs_secret:
                _prepend(post, "503", NOT_CONFIGURED)
        if hook.handshake and "get" in item:
            get = item["get"]
            _add_parameters(get, [copy.deepcopy(p) for p in HUB_PARAMETERS])
            _prepend(get, "403", HANDSHAKE_REFUSED)
            _prepend(get, "503", NOT_CONFIGURED)


# -- outbound webhooks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundEvent:
    """One event type ReplyDesk emits (`EventLog.emit`): what happened, and the JSON schema of `data`."""

    type: str
    summary: str
    data: Schema
    example: dict[str, Any]


def _data(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def _nullable(type_: str, description: str = "") -> Schema:
    out: Schema = {"type": [type_, "null"]}
    if description:
        out["description"] = description
    return out


_ID = {"type": "integer"}
_BY = {"type": "string", "description": "Name of the API key (agent) that acted."}
_TIME = {"type": "string", "format": "date-time"}
_MESSAGE = {"$ref": SCHEMAS + "MessageRead"}
_CONVERSATION = {
    "type": "object",
    "description": "The conversation, as the channel knows it.",
    "properties": {"id": _ID, "channel": {"type": "string"}, "external_id": {"type": "string"}},
    "required": ["id", "channel", "external_id"],
}
_CONVERSATION_EXAMPLE = {"id": 42, "channel": "whatsapp", "external_id": "5215512345678"}
_SLA = _data(
    {
        "conversation_id": _ID,
        "kind": {"type": "string", "enum": ["first_response", "next_response"]},
        "urgency": {"type": "string", "description": "Urgency level the deadline was set for."},
        "started_at": _TIME,
        "due_at": _TIME,
    }
)
_SLA_EXAMPLE = {
    "conversation_id": 42,
    "kind": "first_response",
    "urgency": "high",
    "started_at": "2026-01-05T09:00:00+00:00",
    "due_at": "2026-01-05T09:15:00+00:00",
}
_MESSAGE_EXAMPLE = {
    "id": 1001,
    "conversation_id": 42,
    "channel": "whatsapp",
    "direction": "inbound",
    "kind": "customer",
    "status": "received",
    "text": "¿Dónde está mi pedido 10482?",
    "channel_message_id": "wamid.HBgNNTIxNTUxMjM0NTY3OBUCABIYFjNFQjA=",
    "created_at": "2026-01-05T09:00:00Z",
}
_OUTBOUND_EXAMPLE = {
    **_MESSAGE_EXAMPLE,
    "id": 1002,
    "direction": "outbound",
    "kind": "reply",
    "status": "queued",
    "text": "Tu pedido 10482 sale hoy.",
    "channel_message_id": None,
    "author": "maria",
    "created_at": "2026-01-05T09:03:00Z",
}

OUTBOUND_EVENTS: tuple[OutboundEvent, ...] = (
    OutboundEvent(
        "message.received",
        "A customer message was stored (before triage and drafting).",
        _data({"message": _MESSAGE}),
        {"message": _MESSAGE_EXAMPLE},
    ),
    OutboundEvent(
        "suggestions.created",
        "Draft replies are ready for the agent.",
        _data(
            {
                "message_id": _ID,
                "count": _ID,
                "intent": {"type": "string"},
                "urgency": {"type": "string"},
                "language": _nullable("string", "The customer's language (BCP 47)."),
                "suggestions": {
                    "type": "array",
                    "items": _data({"id": _ID, "rank": _ID, "text": {"type": "string"}}),
                },
                "conversation": _CONVERSATION,
            },
            required=["message_id", "count", "intent", "urgency"],
        ),
        {
            "message_id": 1001,
            "count": 1,
            "intent": "order_status",
            "urgency": "normal",
            "language": "es",
            "suggestions": [{"id": 7, "rank": 1, "text": "Tu pedido 10482 sale hoy."}],
            "conversation": _CONVERSATION_EXAMPLE,
        },
    ),
    OutboundEvent(
        "suggestion.approved",
        "An agent approved a suggestion unchanged (it is queued to send unless `send: false`).",
        _data({"suggestion_id": _ID, "by": _BY}),
        {"suggestion_id": 7, "by": "maria"},
    ),
    OutboundEvent(
        "suggestion.edited",
        "An agent approved a suggestion with edited text.",
        _data({"suggestion_id": _ID, "by": _BY}),
        {"suggestion_id": 7, "by": "maria"},
    ),
    OutboundEvent(
        "suggestion.rejected",
        "An agent rejected a suggestion.",
        _data({"suggestion_id": _ID, "reason": _nullable("string"), "by": _BY}),
        {"suggestion_id": 8, "reason": "wrong order number", "by": "maria"},
    ),
    OutboundEvent(
        "message.outbound",
        "A reply (or survey) is to be sent to the customer: the helpdesk delivers it on the channel. Answer "
        '2xx, optionally with `{"channel_message_id": "..."}`; the message then becomes `sent`. With a '
        "channel or helpdesk transport configured for the conversation, ReplyDesk sends it itself instead.",
        _data(
            {
                "message": _MESSAGE,
                "conversation": _CONVERSATION,
                "customer": _data(
                    {"id": {"type": "string"}, "name": _nullable("string"), "locale": _nullable("string")}
                ),
                "template": {
                    "$ref": SCHEMAS + "TemplateRef",
                    "description": "Present when the message is an approved channel template.",
                },
            },
            required=["message", "conversation", "customer"],
        ),
        {
            "message": _OUTBOUND_EXAMPLE,
            "conversation": _CONVERSATION_EXAMPLE,
            "customer": {"id": "5215512345678", "name": "Ana", "locale": "es-MX"},
        },
    ),
    OutboundEvent(
        "message.external_reply",
        "A person answered the customer outside ReplyDesk (the helpdesk, Meta's inbox, the WhatsApp Business "
        "app): stored as the human's outbound message, already sent. Never sent again.",
        _data({"message": _MESSAGE, "conversation": _CONVERSATION}),
        {
            "message": {
                **_OUTBOUND_EXAMPLE,
                "status": "sent",
                "author": None,
                "sent_at": "2026-01-05T09:03:00Z",
            },
            "conversation": _CONVERSATION_EXAMPLE,
        },
    ),
    OutboundEvent(
        "message.status",
        "An outbound message moved on: `sent`, `delivered`, `read`, or `failed` (from a channel receipt).",
        _data(
            {
                "message_id": _ID,
                "status": {"type": "string", "enum": ["sent", "delivered", "read", "failed"]},
                "at": {**_TIME, "description": "When the channel reports it happened (absent for `sent`)."},
                "error": {"type": "string", "description": "With `failed`: the channel's reason."},
                "error_code": _nullable("string", "With `failed`: the channel's error code, e.g. `131047`."),
            },
            required=["message_id", "status"],
        ),
        {"message_id": 1002, "status": "delivered", "at": "2026-01-05T09:01:10+00:00"},
    ),
    OutboundEvent(
        "message.failed",
        "Delivering an outbound message gave up (retries spent, or the channel refused it for good).",
        _data({"message_id": _ID, "error": {"type": "string"}, "error_code": _nullable("string")}),
        {"message_id": 1002, "error": "HTTP 500", "error_code": None},
    ),
    OutboundEvent(
        "message.read",
        "An agent read inbound messages up to this one (for channels that show read receipts).",
        _data(
            {
                "message_ids": {"type": "array", "items": _ID},
                "channel_message_ids": {"type": "array", "items": {"type": "string"}},
                "by": _BY,
                "conversation": _CONVERSATION,
            },
            required=["message_ids", "channel_message_ids", "by"],
        ),
        {
            "message_ids": [1001],
            "channel_message_ids": ["wamid.HBgNNTIxNTUxMjM0NTY3OBUCABIYFjNFQjA="],
            "by": "maria",
            "conversation": _CONVERSATION_EXAMPLE,
        },
    ),
    OutboundEvent(
        "conversation.assigned",
        "A conversation was assigned to an agent (or unassigned: `agent` is null).",
        _data(
            {
                "conversation_id": _ID,
                "agent": _nullable("string"),
                "agent_key_id": _nullable("string"),
                "by": _BY,
            }
        ),
        {"conversation_id": 42, "agent": "maria", "agent_key_id": "key_3f9a1c2b7d", "by": "lead"},
    ),
    OutboundEvent(
        "conversation.resolved",
        "An agent resolved a conversation.",
        _data({"conversation_id": _ID, "by": _BY, "note": _nullable("string")}),
        {"conversation_id": 42, "by": "maria", "note": None},
    ),
    OutboundEvent(
        "conversation.reopened",
        "A resolved conversation is open again: the customer wrote, or the helpdesk reopened it (`by`).",
        _data({"conversation_id": _ID, "by": {"type": "string"}}, required=["conversation_id"]),
        {"conversation_id": 42},
    ),
    OutboundEvent(
        "sla.at_risk",
        "A response deadline is close (announced once per deadline).",
        _SLA,
        _SLA_EXAMPLE,
    ),
    OutboundEvent(
        "sla.breached",
        "A response deadline passed without an agent reply (announced once per deadline).",
        _SLA,
        _SLA_EXAMPLE,
    ),
    OutboundEvent(
        "survey.answered",
        "A customer answered a CSAT/NPS survey with a score (in a message, or through the API).",
        _data(
            {
                "survey_id": _ID,
                "score": _ID,
                "comment": _nullable("string"),
                "kind": {"type": "string", "enum": ["csat", "nps"]},
                "method": {
                    "type": "string",
                    "description": "How the score was read, e.g. `digits`, `stars`.",
                },
            },
            required=["survey_id", "score", "comment"],
        ),
        {"survey_id": 5, "score": 5, "comment": "muy rápido", "kind": "csat", "method": "digits"},
    ),
    OutboundEvent(
        "survey.commented",
        "A customer answered a survey without a readable score: the text is kept as a comment.",
        _data(
            {"survey_id": _ID, "comment": _nullable("string"), "score": _nullable("integer")},
            ["survey_id", "comment"],
        ),
        {"survey_id": 5, "comment": "the courier was late", "score": None},
    ),
)

# The headers of every delivery (`service.signing.signed_headers`).
DELIVERY_HEADERS: tuple[SignatureHeader, ...] = (
    SignatureHeader(
        "X-ReplyDesk-Signature",
        '`t=<unix seconds>,v2=<hex HMAC-SHA256(REPLYDESK_WEBHOOK_SECRET, "v2:{t}:{event id}:{raw body}")>`. '
        'Verify it in constant time and refuse a `t` more than 300 s from your clock (README "Secrets and '
        'webhook verification"). Absent when `REPLYDESK_WEBHOOK_SECRET` is unset.',
        required=False,
    ),
    SignatureHeader(
        "X-ReplyDesk-Event-Id", "The event id (the body's `id`): the same on every retry; signed."
    ),
    SignatureHeader("X-ReplyDesk-Event", "The event type (the body's `type`)."),
    SignatureHeader("X-ReplyDesk-Delivery", "The delivery id (one per event and destination)."),
    SignatureHeader("Idempotency-Key", "`evt_<event id>`."),
)

RECEIVER_ANSWERS = {
    "2XX": {"description": "Accepted. Answer 2xx to a duplicate (an event id already handled) too."},
    "4XX": {
        "description": "Refused (e.g. a signature that does not verify): the delivery is retried with "
        "exponential backoff up to `REPLYDESK_WEBHOOK_MAX_ATTEMPTS` times, then marked failed."
    },
    "5XX": {"description": "Failed: retried like a 4XX."},
}


def _operation_id(event_type: str) -> str:
    return "on_" + event_type.replace(".", "_")


def document_outbound_webhooks(schema: Schema) -> None:
    """The OpenAPI 3.1 `webhooks` section: one entry per event type, each a POST of the envelope."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["WebhookEnvelope"] = WebhookEnvelope.model_json_schema(ref_template=SCHEMAS + "{model}")
    headers = [
        {"name": h.name, "in": "header", "required": h.required, "description": h.description, "schema": _STR}
        for h in DELIVERY_HEADERS
    ]
    webhooks = schema.setdefault("webhooks", {})
    for event in OUTBOUND_EVENTS:
        body = {
            "allOf": [
                {"$ref": SCHEMAS + "WebhookEnvelope"},
                {"type": "object", "properties": {"type": {"const": event.type}, "data": event.data}},
            ]
        }
        example = {
            "id": 981,
            "type": event.type,
            "created_at": "2026-01-05T09:00:00+00:00",
            "conversation_id": 42,
            "message_id": 1001,
            "data": event.example,
        }
        webhooks[event.type] = {
            "post": {
                "operationId": _operation_id(event.type),
                "summary": event.summary,
                "description": f"ReplyDesk POSTs `{event.type}` to `REPLYDESK_WEBHOOK_URL` (and streams it "
                "on `GET /v1/events`). Verify `X-ReplyDesk-Signature` before acting, and act once per "
                "`X-ReplyDesk-Event-Id`.",
                "tags": ["outbound webhooks"],
                "security": [],
                "parameters": copy.deepcopy(headers),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body, "example": example}},
                },
                "responses": copy.deepcopy(RECEIVER_ANSWERS),
            }
        }


# -- the whole schema ------------------------------------------------------------------------------------


def complete_schema(
    schema: Schema, public_paths: frozenset[str], query_key_prefixes: tuple[str, ...] = ()
) -> Schema:
    """Every step above on FastAPI's schema (in place), which is then returned."""
    document_errors(schema, public_paths)  # first: 422 follows what FastAPI itself validates
    document_channel_webhooks(schema)
    document_security(schema, public_paths, query_key_prefixes)
    document_outbound_webhooks(schema)
    return schema


def install_openapi(
    app: FastAPI, public_paths: frozenset[str], query_key_prefixes: tuple[str, ...] = ()
) -> None:
    """Wrap `app.openapi`: FastAPI's schema (it rebuilds it when routes change), completed once per build."""
    generate: Callable[[], Schema] = app.openapi
    documented: list[Schema] = []

    def openapi() -> Schema:
        schema = generate()
        if not documented or documented[0] is not schema:
            documented[:] = [complete_schema(schema, public_paths, query_key_prefixes)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
