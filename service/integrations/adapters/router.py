"""Native channel webhooks: WhatsApp Cloud API, Messenger, Instagram messaging, Twilio (SMS and WhatsApp),
Chatwoot.

These platforms cannot send an Authorization header, so the integration key goes in the callback URL
(`?api_key=...`); the platform's own signature is verified on top of it. By default a POST is acknowledged as
soon as what it carried is stored (`REPLYDESK_CHANNEL_PIPELINE=background`): triage and drafts run in the
workers and arrive as `suggestions.created`, so a 100-message batch is answered in milliseconds, as Meta and
Twilio expect of a webhook.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import PlainTextResponse, Response

from service.auth.deps import PrincipalDep, require_roles
from service.auth.models import Principal, Role
from service.drafting.deps import LLMWorkDep
from service.drafting.offload import OVERLOADED_RESPONSE, LLMWorkPool
from service.errors import Forbidden, InvalidInput, ServiceUnavailable
from service.integrations.adapters.apply import AdapterRead, apply
from service.integrations.adapters.chatwoot import parse_chatwoot
from service.integrations.adapters.meta import handshake, parse_messenger, parse_whatsapp
from service.integrations.adapters.parsed import ParsedWebhook
from service.integrations.adapters.twilio import parse_twilio
from service.settings import Settings, SettingsDep
from service.signing import verify_meta_signature, verify_timestamped_sha256, verify_twilio_signature
from service.workflow.deps import WorkflowDep
from service.workflow.service import Workflow

__all__ = ["AdapterRead", "router"]

router = APIRouter(
    prefix="/channels", tags=["channels"], dependencies=[Depends(require_roles(Role.integration))]
)

# An empty TwiML document: Twilio reads the answer to its webhook as instructions, and this one says "send
# nothing back" (Twilio Messaging docs, "Receive and reply to incoming messages"; any other content type is
# logged as warning 12300 in the Twilio console).
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class AdapterError(ServiceUnavailable):
    code = "adapter_not_configured"


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput(f"webhook body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidInput("webhook body must be a JSON object")
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:  # e.g. a lone surrogate sent as a \ud800 escape
        raise InvalidInput("webhook body contains text that is not valid Unicode") from exc
    return payload


async def _store(
    settings: Settings, workflow: Workflow, work: LLMWorkPool, parsed: ParsedWebhook, principal: Principal
) -> AdapterRead:
    """Background (default): store and acknowledge; the workers run the pipelines. Inline: run them here, on
    the LLM-bound pool (whose queue limit answers 503 when it is full)."""
    if settings.channel_pipeline == "background":
        return await to_thread.run_sync(apply, workflow, parsed, principal, None)
    return await work.run(apply, workflow, parsed, principal, workflow.pipeline)


def _meta_get(request: Request, token: str | None, name: str) -> PlainTextResponse:
    if not token:
        raise AdapterError(f"set REPLYDESK_{name.upper()}_VERIFY_TOKEN to answer Meta's webhook handshake")
    challenge = handshake(dict(request.query_params), token)
    if challenge is None:
        raise Forbidden("webhook verify token does not match")
    return PlainTextResponse(challenge)


async def _meta_post(
    request: Request,
    secret: str | None,
    name: str,
    signature: str | None,
    parse: Callable[[dict[str, Any], datetime], ParsedWebhook],
    now: datetime,
) -> ParsedWebhook:
    if not secret:
        raise AdapterError(f"set REPLYDESK_{name.upper()}_APP_SECRET so {name} webhooks can be verified")
    body = await request.body()
    verify_meta_signature(secret, signature, body)
    return parse(_json(body), now)


@router.get(
    "/whatsapp/webhook", response_class=PlainTextResponse, summary="WhatsApp webhook verification handshake"
)
def whatsapp_verify(request: Request, settings: SettingsDep) -> PlainTextResponse:
    return _meta_get(request, settings.whatsapp_verify_token, "whatsapp")


@router.post(
    "/whatsapp/webhook",
    response_model=AdapterRead,
    summary="WhatsApp Cloud API webhook (messages, statuses, echoes), X-Hub-Signature-256 verified",
    responses=OVERLOADED_RESPONSE,
)
async def whatsapp_webhook(
    request: Request,
    settings: SettingsDep,
    workflow: WorkflowDep,
    principal: PrincipalDep,
    work: LLMWorkDep,
    x_hub_signature_256: Annotated[str | None, Header()] = None,
) -> AdapterRead:
    parsed = await _meta_post(
        request,
        settings.whatsapp_app_secret,
        "whatsapp",
        x_hub_signature_256,
        parse_whatsapp,
        workflow.clock.now(),
    )
    return await _store(settings, workflow, work, parsed, principal)


@router.get(
    "/messenger/webhook", response_class=PlainTextResponse, summary="Messenger webhook verification handshake"
)
def messenger_verify(request: Request, settings: SettingsDep) -> PlainTextResponse:
    return _meta_get(request, settings.messenger_verify_token, "messenger")


@router.post(
    "/messenger/webhook",
    response_model=AdapterRead,
    summary="Messenger webhook (messages, postbacks, reactions, deliveries, reads, echoes; also Instagram), "
    "X-Hub-Signature-256 verified",
    responses=OVERLOADED_RESPONSE,
)
async def messenger_webhook(
    request: Request,
    settings: SettingsDep,
    workflow: WorkflowDep,
    principal: PrincipalDep,
    work: LLMWorkDep,
    x_hub_signature_256: Annotated[str | None, Header()] = None,
) -> AdapterRead:
    parsed = await _meta_post(
        request,
        settings.messenger_app_secret,
        "messenger",
        x_hub_signature_256,
        parse_messenger,
        workflow.clock.now(),
    )
    return await _store(settings, workflow, work, parsed, principal)


@router.get(
    "/instagram/webhook", response_class=PlainTextResponse, summary="Instagram webhook verification handshake"
)
def instagram_verify(request: Request, settings: SettingsDep) -> PlainTextResponse:
    return _meta_get(request, settings.instagram_verify_token or settings.messenger_verify_token, "instagram")


@router.post(
    "/instagram/webhook",
    response_model=AdapterRead,
    summary="Instagram messaging webhook (`object: instagram`), X-Hub-Signature-256 verified",
    responses=OVERLOADED_RESPONSE,
)
async def instagram_webhook(
    request: Request,
    settings: SettingsDep,
    workflow: WorkflowDep,
    principal: PrincipalDep,
    work: LLMWorkDep,
    x_hub_signature_256: Annotated[str | None, Header()] = None,
) -> AdapterRead:
    secret = settings.instagram_app_secret or settings.messenger_app_secret
    parsed = await _meta_post(
        request, secret, "instagram", x_hub_signature_256, parse_messenger, workflow.clock.now()
    )
    return await _store(settings, workflow, work, parsed, principal)


@router.post(
    "/chatwoot/webhook",
    response_model=AdapterRead,
    summary="Chatwoot webhook (message_created incoming and outgoing, conversation_status_changed); "
    "suggestions go back as a private note when configured",
    responses=OVERLOADED_RESPONSE,
)
async def chatwoot_webhook(
    request: Request,
    settings: SettingsDep,
    workflow: WorkflowDep,
    principal: PrincipalDep,
    work: LLMWorkDep,
    x_chatwoot_signature: Annotated[str | None, Header()] = None,
    x_chatwoot_timestamp: Annotated[str | None, Header()] = None,
) -> AdapterRead:
    body = await request.body()
    now = workflow.clock.now()
    if settings.chatwoot_webhook_secret:
        verify_timestamped_sha256(
            settings.chatwoot_webhook_secret, x_chatwoot_signature, x_chatwoot_timestamp, body, now
        )
    parsed = parse_chatwoot(_json(body), now)
    return await _store(settings, workflow, work, parsed.webhook, principal)


@router.post(
    "/twilio/webhook",
    response_class=Response,
    summary="Twilio webhook (SMS, MMS and WhatsApp messages; status callbacks), X-Twilio-Signature verified",
    responses={
        200: {
            "description": "Stored; an empty TwiML answer (nothing is sent back from here).",
            "content": {"application/xml": {"schema": {"type": "string"}}},
        },
        **OVERLOADED_RESPONSE,
    },
)
async def twilio_webhook(
    request: Request,
    settings: SettingsDep,
    workflow: WorkflowDep,
    principal: PrincipalDep,
    work: LLMWorkDep,
    x_twilio_signature: Annotated[str | None, Header()] = None,
) -> Response:
    if not settings.twilio_auth_token:
        raise AdapterError("set REPLYDESK_TWILIO_AUTH_TOKEN so Twilio webhooks can be verified")
    form = await request.form()
    params = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    url = settings.twilio_webhook_url or str(request.url)
    verify_twilio_signature(settings.twilio_auth_token, url, params, x_twilio_signature)
    parsed = parse_twilio(params, workflow.clock.now())
    result = await _store(settings, workflow, work, parsed, principal)
    return Response(
        EMPTY_TWIML,
        media_type="application/xml",
        headers={"X-ReplyDesk-Ingested": str(result.ingested), "X-ReplyDesk-Receipts": str(result.receipts)},
    )
