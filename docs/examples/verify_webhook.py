"""Verify a ReplyDesk webhook in your receiver: Python 3.9+, standard library only.

    X-ReplyDesk-Event-Id:  42
    X-ReplyDesk-Signature: t=1764680000,v2=<hex HMAC-SHA256(secret, "v2:{t}:{event id}:{raw body}")>

Use the raw request body as received (not re-serialised JSON). `tests/test_security_webhook_signing.py`
checks this file against deliveries made by the service's own dispatcher.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE_S = 300  # seconds between the signature's t and your clock, either way


class WebhookRejected(Exception):
    """Answer 401 and do not process the delivery."""


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> str:
    """The event id of a genuine, fresh delivery; raises WebhookRejected otherwise."""
    lower = {k.lower(): v for k, v in headers.items()}
    event_id = lower.get("x-replydesk-event-id", "")
    parts = [p.strip().partition("=") for p in lower.get("x-replydesk-signature", "").split(",")]
    stamps = [value for key, _, value in parts if key == "t"]
    macs = [value for key, _, value in parts if key == "v2"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not macs or not event_id or ":" in event_id:
        raise WebhookRejected("missing or malformed X-ReplyDesk-Signature / X-ReplyDesk-Event-Id")
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise WebhookRejected("signature timestamp is outside the tolerance (replayed or clock skew)")
    signed = f"v2:{timestamp}:{event_id}:".encode() + body
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, mac) for mac in macs):
        raise WebhookRejected("signature does not match")
    return event_id


class SeenEvents:
    """Replay guard: remember verified event ids for longer than the tolerance plus the retry span (here
    a day, in memory; use a shared store with a TTL when several processes receive)."""

    def __init__(self, keep_s: float = 86_400) -> None:
        self.keep_s = keep_s
        self._seen: dict[str, float] = {}

    def first_time(self, event_id: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        while self._seen:  # ids are kept in arrival order: forget the expired ones from the front
            oldest, seen_at = next(iter(self._seen.items()))
            if now - seen_at < self.keep_s:
                break
            del self._seen[oldest]
        if event_id in self._seen:
            return False
        self._seen[event_id] = now
        return True


# In a handler:
#
#     try:
#         event_id = verify(SECRET, request.headers, raw_body)
#     except WebhookRejected:
#         return 401
#     if not seen.first_time(event_id):
#         return 200  # a replay, or a retry of an event already handled
#     handle(json.loads(raw_body))
#     return 200
