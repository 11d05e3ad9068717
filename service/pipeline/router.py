"""POST /v1/triage: every signal for one customer message."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from service.drafting.deps import LLMWorkDep
from service.drafting.offload import OVERLOADED_RESPONSE
from service.pipeline.deps import MessagePipelineDep
from service.pipeline.models import TriagePipelineRead
from service.triage.models import TriageRequest

router = APIRouter(tags=["triage"])

EXAMPLES = {
    "late_order_es": {
        "summary": "Spanish, deadline today, order number",
        "value": {
            "text": "Hola, mi pedido #A12345 no ha llegado y lo necesito hoy!!",
            "locale": "es-MX",
            "channel": "whatsapp",
            "history": [],
        },
    },
    "calm_fraud_en": {
        "summary": "Calm tone, money at risk: critical",
        "value": {
            "text": "hi, there are 3 purchases on my statement from northwind that aren't mine. "
            "what do I do?",
            "locale": "en-GB",
            "channel": "webchat",
        },
    },
    "repeat_contact_de": {
        "summary": "Short message after unanswered ones: language from history, urgency from repeat contact",
        "value": {
            "text": "??",
            "locale": "de-DE",
            "channel": "sms",
            "history": [
                {"role": "customer", "text": "Wo bleibt meine Bestellung NW-22871?"},
                {"role": "customer", "text": "Hallo, bitte um Rückmeldung"},
            ],
        },
    },
    "emoji_only": {
        "summary": "Emoji only: sentiment from the emoji, language from the locale",
        "value": {"text": "👍🙏", "locale": "pt-BR", "channel": "whatsapp"},
    },
}


@router.post(
    "/triage",
    response_model=TriagePipelineRead,
    summary="Triage one customer message: language, intent, urgency, sentiment, entities, automatable",
    responses={
        422: {
            "description": "Body is not JSON, `text` is missing, not a string, blank after removing "
            "control characters, or longer than 4000 characters."
        },
        **OVERLOADED_RESPONSE,
    },
)
async def triage(
    body: Annotated[TriageRequest, Body(openapi_examples=EXAMPLES)],
    pipeline: MessagePipelineDep,
    work: LLMWorkDep,
) -> TriagePipelineRead:
    """`language.source` says what decided the language (`text`, the customer's earlier messages in `history`,
    the `locale` hint, or the service `default`). `intent.name` is `out_of_scope` when no intent fits.
    `urgency.reasons` explains the level in words; `entities` carry character offsets into the cleaned `text`
    (control characters removed, NFC, trimmed)."""
    return await work.run(pipeline.run, body)
