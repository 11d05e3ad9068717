"""The outbox dispatcher: delivers events as signed webhooks (`service.signing`) with retries and exponential
backoff, or through a registered transport (a helpdesk's or a channel's own API). A transport that meets an
error retrying cannot fix raises `PermanentFailure`: the delivery fails at once.

Deliveries run concurrently: the dispatcher claims due rows in priority order (replies to customers, then
alerts, then informational events; oldest first within each) and attempts them on a pool of `concurrency`
threads, at most `per_receiver` of them to one receiver at once, so a slow helpdesk or channel API cannot hold
every slot. Safe with several processes: on PostgreSQL the candidates are read `FOR UPDATE SKIP LOCKED`
(another dispatcher skips them instead of waiting) and every claimed row is leased by a conditional UPDATE
(`lease_until`), which only one claimant wins on any database; a lease that runs out (the process died) makes
the row due again, with the same event id.

Which events reach `REPLYDESK_WEBHOOK_URL` at all: `EVENT_CLASSES` below. Events someone must act on always
go; informational ones only when the subscription (`REPLYDESK_WEBHOOK_EVENTS`) lists them.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service.clock import Clock
from service.db import Database
from service.db.models import Event, WebhookDelivery
from service.db.rows import get_row
from service.errors import ServiceUnavailable
from service.redaction import redact
from service.signing import signed_headers

log = logging.getLogger("replydesk.webhooks")

# A claimed delivery is leased for this many attempt timeouts (60 s at the default 10 s): long enough that an
# attempt still running is never started again by another worker, short enough that one a killed worker held
# is retried soon.
LEASE_TIMEOUTS = 6


class Priority(IntEnum):
    """Claim order of outbox rows (lower first)."""

    reply = 0  # a message for the customer: a reply (or a channel send) someone is waiting for
    alert = 1  # something an agent or the helpdesk must act on
    info = 2  # what happened, for dashboards and mirrors


@dataclass(frozen=True)
class EventClass:
    actionable: bool  # always delivered to the webhook; informational types only when subscribed
    priority: Priority
    reason: str


# Every event type ReplyDesk emits (the OpenAPI `webhooks` section documents the same 17), classified.
EVENT_CLASSES: dict[str, EventClass] = {
    "message.outbound": EventClass(
        True, Priority.reply, "the helpdesk must send this reply to the customer (surveys: alert priority)"
    ),
    "sla.at_risk": EventClass(True, Priority.alert, "an agent must answer before the deadline passes"),
    "sla.breached": EventClass(True, Priority.alert, "the deadline passed: someone must answer now"),
    "message.failed": EventClass(
        True, Priority.alert, "the customer never got the reply: an agent must resend it or use a template"
    ),
    "message.received": EventClass(
        False, Priority.info, "the helpdesk already has the customer's message from the channel"
    ),
    "suggestions.created": EventClass(
        False, Priority.info, "drafts are shown in the queue and console; nothing is sent until approved"
    ),
    "suggestion.approved": EventClass(
        False, Priority.info, "a decision record; the reply itself comes as message.outbound"
    ),
    "suggestion.edited": EventClass(
        False, Priority.info, "a decision record; the reply itself comes as message.outbound"
    ),
    "suggestion.rejected": EventClass(False, Priority.info, "a decision record: nothing to send"),
    "message.external_reply": EventClass(
        False, Priority.info, "a person already answered elsewhere: never sent again"
    ),
    "message.status": EventClass(
        False, Priority.info, "delivery progress (sent/delivered/read) for dashboards and mirrors"
    ),
    "message.read": EventClass(
        False, Priority.info, "an agent's read mark (the channel's own read receipt has its own transport)"
    ),
    "conversation.assigned": EventClass(False, Priority.info, "state for mirrors: the console shows it"),
    "conversation.resolved": EventClass(False, Priority.info, "state for mirrors: nothing left to do"),
    "conversation.reopened": EventClass(
        False, Priority.info, "state for mirrors: the customer's new message is what needs an answer"
    ),
    "survey.answered": EventClass(False, Priority.info, "a score for reports (GET /v1/metrics/kpis)"),
    "survey.commented": EventClass(
        False, Priority.info, "feedback for reports; the text also stays in the conversation"
    ),
}
ALL_EVENTS = "*"


class WebhookEventsInvalid(ServiceUnavailable):
    """REPLYDESK_WEBHOOK_EVENTS names an event type ReplyDesk does not emit: refused at start-up, not
    ignored."""

    code = "webhook_events_invalid"


def webhook_subscription(names: Iterable[str]) -> frozenset[str]:
    """The informational event types a webhook subscribes to (`*`: all of them), checked against
    `EVENT_CLASSES`; raises `WebhookEventsInvalid` naming any unknown type."""
    wanted = {name.strip() for name in names if name.strip()}
    if ALL_EVENTS in wanted:
        return frozenset(EVENT_CLASSES)
    unknown = sorted(wanted - set(EVENT_CLASSES))
    if unknown:
        informational = sorted(name for name, c in EVENT_CLASSES.items() if not c.actionable)
        raise WebhookEventsInvalid(
            f"REPLYDESK_WEBHOOK_EVENTS lists unknown event types {unknown}; informational types are "
            f"{informational} (or `*` for all of them); events to act on are always delivered",
            details={"unknown": unknown, "informational": informational},
        )
    return frozenset(wanted)


def delivery_priority(type_: str, data: dict[str, Any]) -> Priority:
    """Claim priority of an event: its class's, except that a survey sent to the customer waits behind
    replies (an unclassified type is informational)."""
    cls = EVENT_CLASSES.get(type_)
    if cls is None:
        return Priority.info
    if type_ == "message.outbound" and (data.get("message") or {}).get("kind") == "survey":
        return Priority.alert
    return cls.priority


DEFAULT_PORTS = {"http": 80, "https": 443}


def receiver_of(url: str) -> str:
    """Who a delivery goes to, for the per-receiver bound: a webhook URL's `scheme://host:port`, or a
    transport's system (`wa-read:` and `wa:` both call WhatsApp's API: `wa:`; `chatwoot-note:` is
    `chatwoot:`)."""
    if "://" not in url:
        return url.split(":", 1)[0].split("-", 1)[0] + ":"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


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


def _report_crash(future: Future[None]) -> None:
    """An attempt that raised what `_attempt` does not handle (a transport's bug): logged with its traceback
    (the lease runs out and the row is attempted again), and raised again by `run_once`."""
    exc = future.exception()
    if exc is not None:
        log.error("webhook attempt crashed", exc_info=(type(exc), exc, exc.__traceback__))


@dataclass(frozen=True)
class Claimed:
    id: str
    receiver: str


class WebhookDispatcher:
    """Delivers due outbox rows, `concurrency` at once and at most `per_receiver` at once to one receiver
    (1 and 1: one at a time, in claim order). `run_once` attempts what is due and waits for it (tests, the
    CLI); the worker calls `pump` in its own loop, which starts what fits and returns at once. Every finished
    attempt sets `wake`, so the loop claims the next row as soon as a slot is free."""

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
        concurrency: int = 1,
        per_receiver: int = 1,
        wake: threading.Event | None = None,
    ) -> None:
        if concurrency < 1 or per_receiver < 1:
            raise ValueError("concurrency and per_receiver must be at least 1")
        self.db = db
        self.clock = clock
        self.secret = secret
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.client = client or httpx.Client(timeout=timeout_s)
        self.lease = timedelta(seconds=LEASE_TIMEOUTS * timeout_s)
        self.concurrency = concurrency
        self.per_receiver = per_receiver
        self.wake = wake or threading.Event()  # set when an attempt finishes (a slot is free)
        self.on_delivered: dict[str, DeliveredHook] = {}
        self.on_failed: dict[str, FailedHook] = {}
        self.transports: dict[str, Transport] = {}  # "chatwoot:" -> the Chatwoot API (service/integrations)
        self._slots = threading.Condition()  # guards the in-flight counts below
        self._in_flight: Counter[str] = Counter()  # receiver -> attempts running
        self._running = 0
        self._claiming = threading.Lock()  # one claim at a time per dispatcher (the counts must not race)
        self._pool: ThreadPoolExecutor | None = None

    def backoff(self, attempts: int) -> timedelta:
        """Delay before the next attempt: base·2^(n-1), capped, with ±20 % jitter."""
        base = min(self.backoff_max_s, self.backoff_s * (2 ** max(0, attempts - 1)))
        return timedelta(seconds=base * random.uniform(0.8, 1.2))

    # -- claiming ------------------------------------------------------------------------------------------

    def in_flight(self) -> dict[str, int]:
        """Attempts running now, per receiver."""
        with self._slots:
            return {r: n for r, n in self._in_flight.items() if n}

    def _due(self, now: datetime) -> list[Any]:
        return [
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
        ]

    def _claim(self, limit: int, room: dict[str, int]) -> list[Claimed]:
        """Lease up to `limit` due rows, highest priority first, taking no more for a receiver than its
        `room` (receivers not in `room` have `per_receiver`; those with none left are not even read)."""
        now = self.clock.now()
        full = sorted(r for r, n in room.items() if n <= 0)
        query = (
            select(WebhookDelivery.id, WebhookDelivery.receiver)
            .where(*self._due(now))
            .order_by(WebhookDelivery.priority, WebhookDelivery.next_attempt_at, WebhookDelivery.created_at)
            .limit(min(4 * limit, 200))
        )
        if full:
            query = query.where(WebhookDelivery.receiver.not_in(full))
        if self.db.dialect == "postgresql":
            # one transaction: rows another dispatcher is reading are skipped, not waited for
            with self.db.session() as s:
                rows = s.execute(query.with_for_update(skip_locked=True)).all()
                return self._lease(s, self._choose(rows, limit, room), now)
        # SQLite: read, then lease in a fresh write transaction (upgrading a read transaction to a write one
        # fails at once, without waiting, when another connection wrote in between)
        with self.db.session() as s:
            rows = s.execute(query).all()
        chosen = self._choose(rows, limit, room)
        if not chosen:
            return []
        with self.db.session() as s:
            return self._lease(s, chosen, now)

    def _choose(self, rows: Iterable[Any], limit: int, room: dict[str, int]) -> list[str]:
        taken: Counter[str] = Counter()
        chosen = []
        for delivery_id, receiver in rows:
            if taken[receiver] < room.get(receiver, self.per_receiver):
                taken[receiver] += 1
                chosen.append(delivery_id)
                if len(chosen) == limit:
                    break
        return chosen

    def _lease(self, s: Session, chosen: list[str], now: datetime) -> list[Claimed]:
        """The conditional UPDATE that makes a claim: only rows still pending and unleased are taken."""
        if not chosen:
            return []
        won = s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(chosen), *self._due(now))
            .values(lease_until=now + self.lease)
            .returning(WebhookDelivery.id, WebhookDelivery.receiver)
            .execution_options(synchronize_session=False)
        ).all()
        order = {delivery_id: n for n, delivery_id in enumerate(chosen)}
        return sorted((Claimed(i, r) for i, r in won), key=lambda c: order[c.id])

    # -- running -------------------------------------------------------------------------------------------

    def pump(self, limit: int | None = None) -> list[Future[None]]:
        """Claim as many due rows as there are free slots (at most `limit`) and start them; returns their
        futures without waiting."""
        with self._claiming:
            with self._slots:
                free = self.concurrency - self._running
                room = {r: self.per_receiver - n for r, n in self._in_flight.items() if n}
            if limit is not None:
                free = min(free, limit)
            if free <= 0:
                return []
            claimed = self._claim(free, room)
            with self._slots:
                for c in claimed:
                    self._in_flight[c.receiver] += 1
                    self._running += 1
            pool = self._executor()
            futures = [pool.submit(self._run, c) for c in claimed]
        for future in futures:
            future.add_done_callback(_report_crash)
        return futures

    def run_once(self, limit: int = 50) -> int:
        """Attempt every due delivery once (at most `limit`), concurrently within the bounds, and wait for
        them; returns how many were attempted. An attempt's unexpected error is raised here."""
        started: list[Future[None]] = []
        while len(started) < limit:
            batch = self.pump(limit - len(started))
            started += batch
            if batch:
                continue
            with self._slots:
                if self._running == 0:
                    break
                self._slots.wait(timeout=1.0)  # every slot is taken: look again when one frees
        for future in started:
            future.result()
        return len(started)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="replydesk-delivery")
        return self._pool

    def _run(self, claimed: Claimed) -> None:
        try:
            self._attempt(claimed.id)
        except SQLAlchemyError as exc:
            # the lease runs out and the row is attempted again (same event id); nothing else to undo
            log.warning(
                "webhook attempt not recorded", extra={"delivery_id": claimed.id, "error": redact(str(exc))}
            )
        finally:
            with self._slots:
                self._in_flight[claimed.receiver] -= 1
                if self._in_flight[claimed.receiver] <= 0:
                    del self._in_flight[claimed.receiver]
                self._running -= 1
                self._slots.notify_all()
            self.wake.set()

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

    def shutdown(self) -> None:
        """Wait for the attempts running now and stop the pool's threads (a later claim starts a new one)."""
        with self._claiming:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def close(self) -> None:
        """Finish the running attempts, then close the webhook client and every transport that holds one of
        its own."""
        self.shutdown()
        self.client.close()
        for transport in self.transports.values():
            if isinstance(transport, Closeable):
                transport.close()
