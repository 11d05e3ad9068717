"""Native channel webhooks: WhatsApp Cloud API, Facebook Messenger, Chatwoot `message_created`.

These platforms cannot send an Authorization header, so the integration key goes in the callback URL
(`?api_key=...`); the platform's own signature is verified on top of it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from service.auth.deps import PrincipalDep, require_roles
from service.auth.models import Principal, Role
from service.drafting.deps import LLMWorkDep
from service.drafting.offload import OVERLOADED_RESPONSE
from service.errors import Forbidden, InvalidInput, ServiceUnavailable
from service.integrations.adapters.chatwoot import ChatwootNotes, parse_message_created
from service.integrations.adapters.meta import ParsedWebhook, handshake, parse_messenger, parse_whatsapp
from service.pipeline.deps import MessagePipelineDep
from service.settings import SettingsDep
from service.signing import verify_meta_signature, verify_timestamped_sha256
from service.workflow.deps import WorkflowDep
from service.workflow.models import IngestRead, StatusReceipt
from service.workflow.ports import MessagePipelinePort
from service.workflow.service import Workflow

router = APIRouter(
    prefix="/channels", tags=["channels"], dependencies=[Depends(require_roles(Role.integration))]
)


class AdapterRead(BaseModel):
    ingested: int = Field(description="Customer messages stored (duplicates included).")
    duplicates: int = 0
    receipts: int = Field(0, description="Status receipts applied.")
    unknown_receipts: int = Field(0, description="Receipts for messages ReplyDesk did not send.")
    skipped: int = Field(0, description="Events ReplyDesk does not handle (echoes, reactions...).")
    results: list[IngestRead] = Field(default_factory=list)


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


def _apply(
    workflow: Workflow,
    parsed: ParsedWebhook,
    channel: str,
    principal: Principal,
    pipeline: MessagePipelinePort,
) -> AdapterRead:
    out = AdapterRead(ingested=0, skipped=parsed.skipped)
    for msg in parsed.messages:
        result = workflow.ingest(msg, principal, pipeline)
        out.ingested += 1
        out.duplicates += int(result.duplicate)
        out.results.append(result)
    for r in parsed.receipts:
        mid = workflow.outbound_by_channel_id(channel, r.channel_message_id)
        if mid is None:
            out.unknown_receipts += 1
            continue
        workflow.apply_receipt(mid, StatusReceipt(status=r.status, at=r.at, error=r.error))
        out.receipts += 1
    for w in parsed.watermarks:
        for mid in workflow.outbound_sent_before(channel, w.conversation_external_id, w.at):
            workflow.apply_receipt(mid, StatusReceipt(status="read", at=w.at))
            out.receipts += 1
    return out


def _meta_get(request: Request, token: str | None, name: str) -> PlainTextResponse:
    if not token:
        raise AdapterError(f"set REPLYDESK_{name.upper()}_VERIFY_TOKEN to answer Meta's webhook handshake")
    challenge = handshake(dict(request.query_params), token)
    if challenge is None:
        raise Forbidden("webhook verify token does not match")
    return PlainTextResponse(challenge)


async def _meta_post(request: Request, secret: str | None, name: str, signature: str | None) -> bytes:
    if not secret:
        raise AdapterError(f"set REPLYDESK_{name.upper()}_APP_SECRET so {name} webhooks can be verified")
    body = await request.body()
    verify_meta_signature(secret, signature, body)
    return body


@router.get(
    "/whatsapp/webhook", response_class=PlainTextResponse, summary="WhatsApp webhook verification handshake"
)
def whatsapp_verify(request: Request, settings: SettingsDep) -> PlainTextResponse:
    return _meta_get(request, settings.whatsapp_verify_token, "whatsapp")


@router.post(
    "/whatsapp/webhook",
    response_model=AdapterRead,
    summary="WhatsApp Cloud API webhook (messages and statuses), X-Hub-Signature-256 verified",
    responses=OVERLOADED_RESPONSE,
)
async def whatsapp_webhook(
    request: Request,
    settings: SettingsDep,
    workflow: WorkflowDep,
    pipeline: MessagePipelineDep,
    principal: PrincipalDep,
    work: LLMWorkDep,
    x_hub_signature_256: Annotated[str | None, Header()] = None,
) -> AdapterRead:
    body = await _meta_post(request, settings.whatsapp_app_secret, "whatsapp", x_hub_signature_256)
    parsed = parse_whatsapp(_json(body))
    return await work.run(_apply, workflow, parsed, "whatsapp", principal, pipeline)


@router.get(
    "/messenger/webhook", response_class=PlainTextResponse, summary="Messenger webhook verification handshake"
)
def messenger_verify(request: Request, settings: SettingsDep) -> PlainTextResponse:
    return _meta_get(request, settings.messenger_verify_token, "messenger")


@router.post(
    "/messenger/webhook",
    response_model=AdapterRead,
    summary="Messenger webhook (messages, deliveries, reads), X-Hub-Signature-256 verified",
    responses=OVERLOADED_RESPONSE,
)
async def messenger_webhook(
    request: Request,
    settings: SettingsDep,
    workflow: WorkflowDep,
    pipeline: MessagePipelineDep,
    principal: PrincipalDep,
    work: LLMWorkDep,
    x_hub_signature_256: Annotated[str | None, Header()] = None,
) -> AdapterRead:
    body = await _meta_post(request, settings.messenger_app_secret, "messenger", x_hub_signature_256)
    parsed = parse_messenger(_json(body))
    return await work.run(_apply, workflow, parsed, "messenger", principal, pipeline)


@router.post(
    "/chatwoot/webhook",
    response_model=AdapterRead,
    summary="Chatwoot `message_created` webhook; suggestions go back as a private note when configured",
    responses=OVERLOADED_RESPONSE,
)
async def chatwoot_webhook(
    request: Request,
    settings: SettingsDep,
    workflow: WorkflowDep,
    pipeline: MessagePipelineDep,
    principal: PrincipalDep,
    background: BackgroundTasks,
    work: LLMWorkDep,
    x_chatwoot_signature: Annotated[str | None, Header()] = None,
    x_chatwoot_timestamp: Annotated[str | None, Header()] = None,
) -> AdapterRead:
    body = await request.body()
    if settings.chatwoot_webhook_secret:
        verify_timestamped_sha256(
            settings.chatwoot_webhook_secret,
            x_chatwoot_signature,
            x_chatwoot_timestamp,
            body,
            workflow.clock.now(),
        )
    parsed = parse_message_created(_json(body))
    if parsed is None:
        return AdapterRead(ingested=0, skipped=1)
    result = await work.run(workflow.ingest, parsed.message, principal, pipeline)
    if (
        settings.chatwoot_base_url
        and settings.chatwoot_api_token
        and not result.duplicate
        and result.suggestions
    ):
        notes = ChatwootNotes(settings.chatwoot_base_url, settings.chatwoot_api_token)

        def post() -> None:
            try:
                notes.post(parsed.account_id, parsed.conversation_id, result)
            finally:
                notes.close()

        background.add_task(post)
    return AdapterRead(ingested=1, duplicates=int(result.duplicate), results=[result])
