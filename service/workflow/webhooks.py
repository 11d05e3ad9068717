"""The outbox dispatcher: delivers events as signed webhooks (`service.signing`) with retries and exponential
backoff, or through a registered transport (a helpdesk's or a channel's own API). Safe with several processes:
a delivery is leased by a conditional UPDATE before it is attempted. A transport that meets an error retrying
cannot fix raises `PermanentFailure`: the delivery fails at once.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from service.clock import Clock
from service.db import Database
from service.db.models import Event, WebhookDelivery
from service.db.rows import changed, get_row
from service.redaction import redact
from service.signing import signed_headers

log = logging.getLogger("replydesk.webhooks")

LEASE = timedelta(seconds=60)


def envelope(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "created_at": event.created_at.isoformat(),
        "conversation_id": event.conversation_id,
        "message_id": event.message_id,
        "data": event.payload,
    }


DeliveredHook = Callable[[Session, Event, httpx.Response], None]
# (session, event, error, code): `code` is the channel's error code of a permanent failure (WhatsApp "131047",
# Twilio "21610"), None when the retries are spent.
FailedHook = Callable[[Session, Event, str, str | None], None]


class PermanentFailure(Exception):
    """Raised by a transport for an error no retry can fix (the channel refused the message for good: outside
    the 24-hour window, an unsubscribed or unknown recipient, an invalid token, a malformed conversation id).
    The delivery is marked failed at once and the failed hook gets `reason` (what the agent should read and
    do) and `code` (the channel's error code, if it gave one)."""

    def __init__(self, code: str | None, reason: str) -> None:
        super().__init__(f"{reason} ({code})" if code else reason)
        self.code = code
        self.reason = reason


def _transport_reason(response: httpx.Response) -> str:
    """`: <reason>` when a transport's failed answer carries a JSON `error` string (what the channel said),
    credential-redacted and clipped; else empty."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    reason = body.get("error") if isinstance(body, dict) else None
    return f": {redact(reason)[:300]}" if isinstance(reason, str) and reason else ""


class Transport(Protocol):
    """Delivers an outbox row whose url is `<name>:` some other way than a signed webhook POST (a
    helpdesk's or a channel's own API). Answers like an HTTP response: 2xx = delivered (a JSON
    `channel_message_id` names the message on the channel), anything else or an httpx.HTTPError = retried with
    the same backoff (a JSON `error` string in a failed answer is recorded with its status); raises
    `PermanentFailure` when retrying cannot help."""

    def post(self, envelope: dict[str, Any]) -> httpx.Response: ...


@runtime_checkable
class Closeable(Protocol):
    def close(self) -> None: ...


class WebhookDispatcher:
    """Delivers due outbox rows. Safe with several processes: a row is leased by a conditional UPDATE
    first."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        secret: str | None,
        max_attempts: int,
        backoff_s: float,
        backoff_max_s: float,
        timeout_s: float,
        client: httpx.Client | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.secret = secret
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.client = client or httpx.Client(timeout=timeout_s)
        self.on_delivered: dict[str, DeliveredHook] = {}
        self.on_failed: dict[str, FailedHook] = {}
        self.transports: dict[str, Transport] = {}  # "chatwoot:" -> the Chatwoot API (service/integrations)

    def backoff(self, attempts: int) -> timedelta:
        """Delay before the next attempt: base·2^(n-1), capped, with ±20 % jitter."""
        base = min(self.backoff_max_s, self.backoff_s * (2 ** max(0, attempts - 1)))
        return timedelta(seconds=base * random.uniform(0.8, 1.2))

    def _claim(self, limit: int) -> list[str]:
        now = self.clock.now()
        with self.db.session() as s:
            candidates = list(
                s.scalars(
                    select(WebhookDelivery.id)
                    .where(
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.next_attempt_at <= now,
                        or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
                    )
                    .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.created_at)
                    .limit(limit)
                )
            )
        claimed = []
        for delivery_id in candidates:
            with self.db.session() as s:
                won = changed(
                    s,
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery_id,
                        WebhookDelivery.status == "pending",
                        or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
                    )
                    .values(lease_until=now + LEASE),
                )
                if won == 1:
                    claimed.append(delivery_id)
        return claimed

    def run_once(self, limit: int = 50) -> int:
        """Attempt every due delivery once; returns how many were attempted."""
        claimed = self._claim(limit)
        for delivery_id in claimed:
            self._attempt(delivery_id)
        return len(claimed)

    def _attempt(self, delivery_id: str) -> None:
        with self.db.session() as s:
            delivery = s.get(WebhookDelivery, delivery_id)
            event = s.get(Event, delivery.event_id) if delivery else None
            if delivery is None or event is None:
                return
            payload = envelope(event)
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            url, event_id, event_type = delivery.url, event.id, event.type
        now = self.clock.now()
        headers = signed_headers(
            self.secret,
            int(now.timestamp()),
            body,
            event_id=event_id,
            event_type=event_type,
            delivery_id=delivery_id,
        )
        response: httpx.Response | None = None
        error: str | None = None
        refused: PermanentFailure | None = None
        transport = self.transports.get(url)
        try:
            if transport is not None:
                response = transport.post(payload)
            else:
                response = self.client.post(url, content=body, headers=headers)
            if not response.is_success:
                error = f"HTTP {response.status_code}"
                if transport is not None:
                    error += _transport_reason(response)
        except httpx.HTTPError as exc:
            error = redact(f"{type(exc).__name__}: {exc}")  # stored and logged: no credentials
        except PermanentFailure as exc:
            refused = exc
            error = redact(exc.reason)
        with self.db.session() as s:
            delivery = get_row(s, WebhookDelivery, delivery_id)
            event = get_row(s, Event, delivery.event_id)
            delivery.attempts += 1
            delivery.lease_until = None
            delivery.last_status_code = response.status_code if response is not None else None
            if error is None and response is not None:
                delivery.status = "delivered"
                delivery.delivered_at = self.clock.now()
                delivery.last_error = None
                hook = self.on_delivered.get(event.type)
                if hook:
                    hook(s, event, response)
                log.info(
                    "webhook delivered",
                    extra={"event_id": event.id, "event_type": event.type, "attempts": delivery.attempts},
                )
                return
            delivery.last_error = error
            if refused is not None or delivery.attempts >= self.max_attempts:
                delivery.status = "failed"
                code = refused.code if refused is not None else None
                fail_hook = self.on_failed.get(event.type)
                if fail_hook:
                    fail_hook(s, event, error or "unknown error", code)
                log.warning(
                    "webhook refused for good" if refused is not None else "webhook gave up",
                    extra={
                        "event_id": event.id,
                        "event_type": event.type,
                        "attempts": delivery.attempts,
                        "error": error,
                        "error_code": code,
                    },
                )
            else:
                delivery.next_attempt_at = self.clock.now() + self.backoff(delivery.attempts)
                log.info(
                    "webhook retry scheduled",
                    extra={"event_id": event.id, "attempts": delivery.attempts, "error": error},
                )

    def close(self) -> None:
        """Close the webhook client and every transport that holds one of its own."""
        self.client.close()
        for transport in self.transports.values():
            if isinstance(transport, Closeable):
                transport.close()
