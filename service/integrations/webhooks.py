"""Signed outbound webhooks (HMAC-SHA256 over `timestamp.body`), their verification, Meta's X-Hub-Signature-256,
and the outbox dispatcher that delivers events with retries and exponential backoff.

Receivers verify a delivery with `verify_signature(...)` and drop replays by the event id (`ReplayGuard`): every
retry of one event carries the same `X-ReplyDesk-Event-Id`, so handling is idempotent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from service.db import Database
from service.db.models import Event, WebhookDelivery
from service.errors import Unauthorized
from service.workflow.clock import Clock

log = logging.getLogger("replydesk.webhooks")

SIGNATURE_HEADER = "X-ReplyDesk-Signature"
TIMESTAMP_HEADER = "X-ReplyDesk-Timestamp"
EVENT_ID_HEADER = "X-ReplyDesk-Event-Id"
EVENT_TYPE_HEADER = "X-ReplyDesk-Event"
DELIVERY_HEADER = "X-ReplyDesk-Delivery"
SIGNATURE_VERSION = "v1"
LEASE = timedelta(seconds=60)


class InvalidSignature(Unauthorized):
    code = "invalid_signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={mac}"


def signed_headers(
    secret: str | None, timestamp: int, body: bytes, *, event_id: int, event_type: str, delivery_id: str
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        EVENT_ID_HEADER: str(event_id),
        EVENT_TYPE_HEADER: event_type,
        DELIVERY_HEADER: delivery_id,
        "Idempotency-Key": f"evt_{event_id}",
        "User-Agent": "ReplyDesk-Webhooks/1",
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


def verify_signature(
    secret: str, headers: Mapping[str, str], body: bytes, now: datetime, tolerance_s: int = 300
) -> None:
    """Raise InvalidSignature unless the delivery is signed with `secret` and its timestamp is fresh."""
    lower = {k.lower(): v for k, v in headers.items()}
    ts_raw = lower.get(TIMESTAMP_HEADER.lower(), "")
    provided = lower.get(SIGNATURE_HEADER.lower(), "")
    if not ts_raw.isdigit() or not provided:
        raise InvalidSignature("webhook is not signed (timestamp or signature header missing)")
    timestamp = int(ts_raw)
    if abs(now.timestamp() - timestamp) > tolerance_s:
        raise InvalidSignature(f"webhook timestamp is more than {tolerance_s} s away from now (replay?)")
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, part.strip()) for part in provided.split(",")):
        raise InvalidSignature("webhook signature does not match the body")


class ReplayGuard:
    """Remembers recently seen event ids; `first_time(id)` is False for a replay or a retry already handled."""

    def __init__(self, size: int = 10_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def first_time(self, event_id: str) -> bool:
        with self._lock:
            if event_id in self._seen:
                return False
            self._seen[event_id] = None
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
            return True


def verify_meta_signature(app_secret: str, header: str | None, body: bytes) -> None:
    """Meta (WhatsApp Cloud, Messenger): `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>`."""
    if not header or not header.startswith("sha256="):
        raise InvalidSignature("missing X-Hub-Signature-256 header")
    expected = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, header.removeprefix("sha256=")):
        raise InvalidSignature("X-Hub-Signature-256 does not match the body")


def verify_timestamped_sha256(
    secret: str,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: datetime,
    tolerance_s: int = 300,
) -> None:
    """`sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>` with a fresh timestamp (Chatwoot's scheme)."""
    if not signature or not timestamp or not timestamp.isdigit():
        raise InvalidSignature("missing signature or timestamp header")
    if abs(now.timestamp() - int(timestamp)) > tolerance_s:
        raise InvalidSignature(f"signature timestamp is more than {tolerance_s} s away from now (replay?)")
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(f"sha256={mac}", signature):
        raise InvalidSignature("signature does not match the body")


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
FailedHook = Callable[[Session, Event, str], None]


class WebhookDispatcher:
    """Delivers due outbox rows. Safe with several processes: a row is leased by a conditional UPDATE first."""

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
                res = s.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery_id,
                        WebhookDelivery.status == "pending",
                        or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
                    )
                    .values(lease_until=now + LEASE)
                )
                if res.rowcount == 1:
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
            body = json.dumps(envelope(event), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            url, event_type = delivery.url, event.type
        now = self.clock.now()
        headers = signed_headers(
            self.secret,
            int(now.timestamp()),
            body,
            event_id=event.id,
            event_type=event_type,
            delivery_id=delivery_id,
        )
        response: httpx.Response | None = None
        error: str | None = None
        try:
            response = self.client.post(url, content=body, headers=headers)
            if not response.is_success:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        with self.db.session() as s:
            delivery = s.get(WebhookDelivery, delivery_id)
            event = s.get(Event, delivery.event_id)
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
            if delivery.attempts >= self.max_attempts:
                delivery.status = "failed"
                fail_hook = self.on_failed.get(event.type)
                if fail_hook:
                    fail_hook(s, event, error or "unknown error")
                log.warning(
                    "webhook gave up",
                    extra={
                        "event_id": event.id,
                        "event_type": event.type,
                        "attempts": delivery.attempts,
                        "error": error,
                    },
                )
            else:
                delivery.next_attempt_at = self.clock.now() + self.backoff(delivery.attempts)
                log.info(
                    "webhook retry scheduled",
                    extra={"event_id": event.id, "attempts": delivery.attempts, "error": error},
                )

    def close(self) -> None:
        self.client.close()
