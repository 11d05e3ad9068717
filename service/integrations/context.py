"""Context providers: facts added to drafting from the helpdesk's own systems, e.g. the status of an order
whose number appears in the message. Providers are pluggable (`ContextProvider`); ReplyDesk ships an HTTP one.

A provider that fails (timeout, 5xx, bad JSON) gives no facts and the message is still triaged and drafted.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

import httpx

from service.redaction import redact
from service.settings import Settings
from service.triage.entities import extract_entities
from service.workflow.models import ContextFact

log = logging.getLogger("replydesk.context")

SUMMARY_FIELDS = ("status", "eta", "estimated_delivery", "carrier", "tracking_url", "updated_at")


@runtime_checkable
class ContextProvider(Protocol):
    name: str

    def provide(self, text: str, locale: str | None) -> list[ContextFact]:
        """Facts about this message; [] when there is nothing to add. Must not raise on a provider outage."""
        ...


class HttpOrderStatusProvider:
    """GET `url_template.format(order_number=...)` for each order number in the message (at most
    `max_orders`).

    The endpoint answers JSON: either `{"summary": "..."}` or fields like `status`, `eta`, `carrier`,
    `tracking_url`; 404 means the order does not exist (also a useful fact for the reply).
    """

    name = "order_status"

    def __init__(
        self,
        url_template: str,
        *,
        token: str | None = None,
        timeout_s: float = 3.0,
        max_orders: int = 2,
        client: httpx.Client | None = None,
    ) -> None:
        if "{order_number}" not in url_template:
            raise ValueError("the order-status URL template needs an `{order_number}` placeholder")
        self.url_template = url_template
        self.max_orders = max_orders
        headers = {"Accept": "application/json", "User-Agent": "ReplyDesk-Context/1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = client or httpx.Client(timeout=timeout_s, headers=headers)

    def order_numbers(self, text: str, locale: str | None) -> list[str]:
        seen: list[str] = []
        for e in extract_entities(text, locale):
            if e.type == "order_number" and e.value not in seen:
                seen.append(e.value)
        return seen[: self.max_orders]

    def provide(self, text: str, locale: str | None) -> list[ContextFact]:
        facts = []
        for number in self.order_numbers(text, locale):
            url = self.url_template.format(order_number=quote(number, safe=""))
            try:
                response = self.client.get(url)
                if response.status_code == 404:
                    facts.append(
                        ContextFact(
                            source=self.name,
                            key=number,
                            data={"found": False},
                            text=f"Order {number}: no order with this number was found.",
                        )
                    )
                    continue
                response.raise_for_status()
                body = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning(
                    "order-status provider failed", extra={"order_number": number, "error": redact(str(exc))}
                )
                continue
            if not isinstance(body, dict):
                log.warning("order-status provider returned non-object JSON", extra={"order_number": number})
                continue
            facts.append(
                ContextFact(
                    source=self.name, key=number, text=_summary(number, body), data={"found": True, **body}
                )
            )
        return facts

    def close(self) -> None:
        self.client.close()


def _summary(number: str, body: dict[str, Any]) -> str:
    if isinstance(body.get("summary"), str) and body["summary"].strip():
        return f"Order {number}: {body['summary'].strip()}"
    parts = [f"{k.replace('_', ' ')} {body[k]}" for k in SUMMARY_FIELDS if body.get(k) not in (None, "")]
    return f"Order {number}: " + ("; ".join(parts) if parts else "found (no status details)")


class ContextProviders:
    def __init__(self, providers: list[ContextProvider]) -> None:
        self.providers = providers

    @classmethod
    def from_settings(cls, settings: Settings) -> ContextProviders:
        providers: list[ContextProvider] = []
        if settings.context_order_status_url:
            providers.append(
                HttpOrderStatusProvider(
                    settings.context_order_status_url,
                    token=settings.context_order_status_token,
                    timeout_s=settings.context_timeout_s,
                )
            )
        return cls(providers)

    def lookup(self, text: str, locale: str | None) -> list[ContextFact]:
        facts: list[ContextFact] = []
        for provider in self.providers:
            facts.extend(provider.provide(text, locale))
        return facts
