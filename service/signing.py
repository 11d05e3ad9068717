"""HMAC-SHA256 signatures: ReplyDesk's signed outbound webhooks (over `timestamp.body`) and their
verification, Meta's X-Hub-Signature-256 and Chatwoot's timestamped signature on inbound webhooks.

Receivers verify a delivery with `verify_signature(...)` and drop replays by the event id (`ReplayGuard`):
every retry of one event carries the same `X-ReplyDesk-Event-Id`, so handling is idempotent.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime

from service.errors import Unauthorized

SIGNATURE_HEADER = "X-ReplyDesk-Signature"
TIMESTAMP_HEADER = "X-ReplyDesk-Timestamp"
EVENT_ID_HEADER = "X-ReplyDesk-Event-Id"
EVENT_TYPE_HEADER = "X-ReplyDesk-Event"
DELIVERY_HEADER = "X-ReplyDesk-Delivery"
SIGNATURE_VERSION = "v1"


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
    """Remembers recently seen event ids; `first_time(id)` is False for a replay or a retry already
    handled."""

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
    """Meta (WhatsApp Cloud, Messenger): `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw
    body)>`."""
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
