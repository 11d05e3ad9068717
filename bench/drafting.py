"""Drafting latency: template fallback drafts, and the LLM path's own overhead (everything except the LLM
call).

    replydesk bench drafting            # or: python -m bench.drafting

* fallback: `Drafter.draft` with no LLM configured, over a mix of languages and intents (missing info, article
  answer, handoff). Target ≤ 5 ms per call.
* llm overhead: `Drafter.draft` with an LLM configured whose HTTP transport is answered in-process (httpx2
  MockTransport) with three valid drafts in the customer's language, so every stage runs (redaction, prompt
  rendering, parsing, restoring, validation incl. language and tone checks). Overhead = total time minus the
  time inside the `chat.completions.create` call (logged per call as `latency_ms`). Target ≤ 10 ms per call.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai

from bench.stub_llm import chat_completion
from service.drafting.drafter import Drafter
from service.drafting.llm import PROMPT_HEADER, LLMCallLog, LLMClient
from service.drafting.models import GroundingArticle
from service.settings import Settings
from service.tone.checker import ToneChecker
from service.triage.models import (
    Entity,
    Intent,
    Language,
    Sentiment,
    SentimentLabel,
    TriageRead,
    Urgency,
    UrgencyLevel,
)
from service.triage.taxonomy import load_taxonomy

ARTICLE = {
    "en": GroundingArticle(
        article_id="track-your-order",
        title="Track your order",
        locale="en",
        url="https://help.northwind.example/en/orders/track-your-order",
        summary="To track an order, open Orders in the Northwind app, tap the order, then tap Track package.",
        snippet="Tracking updates can take 24 hours after dispatch.",
    ),
    "es": GroundingArticle(
        article_id="es-seguimiento-pedido",
        title="Seguir su pedido",
        locale="es",
        url="https://help.northwind.example/es/pedidos/seguir-pedido",
        summary="Para seguir su pedido, abra Pedidos en la app de Northwind, toque el pedido y "
        "luego Seguir envío.",
        snippet="El número de seguimiento aparece en 24 horas.",
    ),
    "de": GroundingArticle(
        article_id="de-sendungsverfolgung",
        title="Bestellung verfolgen",
        locale="de",
        url="https://help.northwind.example/de/bestellungen/verfolgen",
        summary="Öffnen Sie in der Northwind-App Bestellungen, tippen Sie auf die Bestellung und "
        "dann auf Paket verfolgen.",
        snippet="Die Sendungsnummer erscheint nach 24 Stunden.",
    ),
}

# (language, locale, intent, message, answer drafts the fake LLM returns)
CASES: list[tuple[str, str, str, str, list[str]]] = [
    (
        "en",
        "en-US",
        "order_status",
        "hi, where is my order NW-48213? email me at ana@example.com",
        [
            "Hi, thanks for your message! You can follow order [ORDER_1] in the Northwind app: open Orders, "
            "tap the "
            "order, then Track package.\n\n"
            "Details: https://help.northwind.example/en/orders/track-your-order",
            "Thanks for reaching out. Open Orders in the app and tap Track package to see where "
            "[ORDER_1] is.",
            "Hi! Tracking for your order appears in the app under Orders. We will also write to [EMAIL_1].",
        ],
    ),
    (
        "es",
        "es-MX",
        "order_status",
        "Hola, ¿dónde está mi pedido? Lo necesito para el viernes",
        [
            "Hola, gracias por escribirnos. ¿Podría enviarnos su número de pedido? Así lo revisamos "
            "enseguida.",
            "Hola, con gusto le ayudamos. Para revisar el estado, ¿nos indica el número de su pedido, por "
            "favor?",
            "Gracias por su mensaje. Indíquenos el número de pedido y le confirmamos dónde está.",
        ],
    ),
    (
        "de",
        "de-DE",
        "delivery_delay",
        "Meine Bestellung NW-22871 ist seit einer Woche überfällig!",
        [
            "Guten Tag, es tut uns leid, dass Ihre Bestellung NW-22871 später kommt. Den aktuellen Stand "
            "sehen Sie in "
            "der App unter Bestellungen.\n\nhttps://help.northwind.example/de/bestellungen/verfolgen",
            "Es tut uns leid für die Verspätung. Öffnen Sie bitte Bestellungen in der App und tippen Sie auf "
            "Paket "
            "verfolgen.",
            "Guten Tag, danke für Ihre Geduld. Wir prüfen Ihre Sendung und melden uns hier bei Ihnen.",
        ],
    ),
    (
        "en",
        "en-GB",
        "damaged_item",
        "the lamp arrived broken, call me on +44 7700 900123",
        [
            "I'm so sorry the lamp arrived damaged. A colleague will take over and get back to you shortly.",
            "Sorry about the broken lamp! We have passed this to our team, who will contact you soon.",
        ],
    ),
]


def _triage(language: str, intent: str, text: str) -> TriageRead:
    spec = load_taxonomy().get(intent)
    return TriageRead(
        language=Language(code=language, confidence=0.95, source="text"),
        intent=Intent(name=intent, confidence=0.9),
        urgency=Urgency(level=UrgencyLevel.normal, score=0.4),
        sentiment=Sentiment(label=SentimentLabel.neutral, score=0.0),
        entities=list[Entity](),
        automatable=bool(spec and spec.automatable),
    )


def _answer_transport(answers: dict[str, list[str]]) -> httpx2.MockTransport:
    def handle(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        user = body["messages"][-1]["content"]
        if request.headers.get(PROMPT_HEADER, "").startswith("handoff."):
            content = json.dumps(
                {"wants": "The customer reports a product that arrived damaged.", "known": [], "missing": []}
            )
        else:
            key = next(k for k in answers if f'"message": "{k}' in user)
            content = json.dumps(
                {
                    "language": "xx",
                    "drafts": answers[key],
                    "cited_article_ids": [],
                    "needs_human": False,
                    "missing_info": [],
                },
                ensure_ascii=False,
            )
        return httpx2.Response(
            200,
            json=chat_completion(
                content, completion_id="bench", model="bench", prompt_tokens=1, completion_tokens=1
            ),
        )

    return httpx2.MockTransport(handle)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "mean_ms": round(statistics.fmean(ordered), 3),
        "p50_ms": round(ordered[len(ordered) // 2], 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 3),
        "max_ms": round(ordered[-1], 3),
    }


def run_drafting_bench(rounds: int = 200, log: Callable[[str], object] = print) -> dict:
    tone = ToneChecker.from_path(None, default_locale="en")
    offline = Drafter.from_settings(Settings(llm_base_url=None), tone=tone)

    # the ask-for-the-order-number answers are in the message's own words, so the key is the message prefix
    answers = {text[:12]: drafts for _, _, _, text, drafts in CASES}
    calls: list[LLMCallLog] = []
    settings = Settings(llm_base_url="http://llm.bench.invalid/v1", llm_model="bench")
    llm = LLMClient.from_settings(settings)
    assert llm is not None
    llm._client = openai.OpenAI(
        base_url=settings.llm_base_url,
        api_key="bench",
        max_retries=0,
        http_client=httpx2.Client(transport=_answer_transport(answers)),
    )
    llm.add_sink(calls.append)
    online = Drafter.from_settings(settings, tone=tone, llm=llm)

    prepared = [
        (text, _triage(lang, intent, text), [ARTICLE.get(lang, ARTICLE["en"])], loc)
        for lang, loc, intent, text, _ in CASES
    ]
    for text, triage, arts, loc in prepared:  # warm-up: regex compilation, langdetect profiles, caches
        offline.draft(text, triage, arts, [], loc)
        online.draft(text, triage, arts, [], loc)

    fallback: list[float] = []
    for _ in range(rounds):
        for text, triage, arts, loc in prepared:
            t0 = time.perf_counter()
            offline.draft(text, triage, arts, [], loc)
            fallback.append((time.perf_counter() - t0) * 1000)

    totals: list[float] = []
    overhead: list[float] = []
    llm_drafts = 0
    for _ in range(rounds):
        for text, triage, arts, loc in prepared:
            calls.clear()
            t0 = time.perf_counter()
            result = online.draft(text, triage, arts, [], loc)
            total = (time.perf_counter() - t0) * 1000
            totals.append(total)
            overhead.append(total - sum(c.latency_ms for c in calls))
            llm_drafts += sum(d.generator == "llm" for d in result.drafts)

    report: dict[str, Any] = {
        "kind": "drafting",
        "rounds": rounds,
        "cases": len(CASES),
        "fallback_templates": _percentiles(fallback),
        "llm_path_total_with_in_process_llm": _percentiles(totals),
        "llm_path_overhead_excluding_llm_call": _percentiles(overhead),
        "llm_drafts_shipped_per_call": round(llm_drafts / len(totals), 2),
        "targets": {"fallback_ms": 5.0, "overhead_ms": 10.0},
    }
    log(f"fallback drafts: {report['fallback_templates']}")
    log(f"llm path overhead (excl. LLM call): {report['llm_path_overhead_excluding_llm_call']}")
    log(f"llm drafts shipped per call: {report['llm_drafts_shipped_per_call']}")
    return report


if __name__ == "__main__":
    from bench import write_result

    print(f"written to {write_result(run_drafting_bench(), None, 'drafting')}")
