"""HMAC-SHA256 signatures: ReplyDesk's signed outbound webhooks and their verification, Meta's
X-Hub-Signature-256 and Chatwoot's timestamped signature on inbound webhooks; Twilio's X-Twilio-Signature
(HMAC-SHA1).

An outbound delivery carries two headers: `X-ReplyDesk-Event-Id: <id>` and
`X-ReplyDesk-Signature: t=<unix>,v2=<hex>`, with <hex> = HMAC-SHA256(secret, "v2:{t}:{id}:{raw body}").
The event id is inside the signed string, so a receiver's replay guard can trust it: `verify_signature`
checks the MAC and that `t` is within `TOLERANCE_S` of now, and returns the verified event id for
`ReplayGuard.first_time`. Every retry of one event carries the same event id (and a fresh `t`), so
handling stays idempotent. README "Secrets and webhook verification" has stand-alone Python and Node
versions (`docs/examples/`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from service.errors import Unauthorized

SIGNATURE_HEADER = "X-ReplyDesk-Signature"
EVENT_ID_HEADER = "X-ReplyDesk-Event-Id"
EVENT_TYPE_HEADER = "X-ReplyDesk-Event"
DELIVERY_HEADER = "X-ReplyDesk-Delivery"
SIGNATURE_VERSION = "v2"  # v1 signed "{t}.{body}" (t in X-ReplyDesk-Timestamp), without the event id
TOLERANCE_S = 300
# No ":" in an event id: with a digits-only timestamp the signed string then splits one way only.
_EVENT_ID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


class InvalidSignature(Unauthorized):
    code = "invalid_signature"


@dataclass(frozen=True)
class VerifiedWebhook:
    """What a valid signature vouches for: this event id, signed at this time, with this body."""

    event_id: str
    timestamp: int


def signed_string(timestamp: int, event_id: str, body: bytes) -> bytes:
    """The bytes the signature covers: `v2:{timestamp}:{event_id}:{raw body}`."""
    return f"{SIGNATURE_VERSION}:{timestamp}:{event_id}:".encode() + body


def sign(secret: str, timestamp: int, event_id: str, body: bytes) -> str:
    """The `X-ReplyDesk-Signature` value: `t=<timestamp>,v2=<hex HMAC-SHA256>`."""
    if not _EVENT_ID.fullmatch(event_id):
        raise ValueError(f"event id {event_id!r} is not 1-128 of [A-Za-z0-9_.-]")
    mac = hmac.new(secret.encode("utf-8"), signed_string(timestamp, event_id, body), hashlib.sha256)
    return f"t={timestamp},{SIGNATURE_VERSION}={mac.hexdigest()}"


def signed_headers(
    secret: str | None,
    timestamp: int,
    body: bytes,
    *,
    event_id: int | str,
    event_type: str,
    delivery_id: str,
) -> dict[str, str]:
    """Headers of one delivery; without a secret there is no signature header (the service warns at start
    and in /health)."""
    headers = {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: str(event_id),
        EVENT_TYPE_HEADER: event_type,
        DELIVERY_HEADER: delivery_id,
        "Idempotency-Key": f"evt_{event_id}",
        "User-Agent": "ReplyDesk-Webhooks/2",
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, str(event_id), body)
    return headers


def _signature_parts(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and timestamp is None:
            timestamp = int(value)
        elif key == SIGNATURE_VERSION and value:
            macs.append(value)
    return timestamp, macs


def verify_signature(
    secret: str, headers: Mapping[str, str], body: bytes, now: datetime, tolerance_s: int = TOLERANCE_S
) -> VerifiedWebhook:
    """The verified event id and timestamp of a delivery; raises InvalidSignature unless it is signed with
    `secret` over its event id and raw body, and its timestamp is within `tolerance_s` of `now`."""
    lower = {k.lower(): v for k, v in headers.items()}
    event_id = lower.get(EVENT_ID_HEADER.lower(), "")
    timestamp, macs = _signature_parts(lower.get(SIGNATURE_HEADER.lower(), ""))
    if timestamp is None or not macs:
        raise InvalidSignature(f"webhook is not signed ({SIGNATURE_HEADER}: t=...,v2=... missing)")
    if not _EVENT_ID.fullmatch(event_id):
        raise InvalidSignature(f"webhook has no valid {EVENT_ID_HEADER} header")
    if abs(now.timestamp() - timestamp) > tolerance_s:
        raise InvalidSignature(f"webhook timestamp is more than {tolerance_s} s away from now (replay?)")
    expected = sign(secret, timestamp, event_id, body).rpartition("=")[2]
    if not any(hmac.compare_digest(expected, mac) for mac in macs):
        raise InvalidSignature("webhook signature does not match its timestamp, event id and body")
    return VerifiedWebhook(event_id=event_id, timestamp=timestamp)


class ReplayGuard:
    """Remembers recently seen event ids; `first_time(id)` is False for a replay or a retry already
    handled. Pass it `VerifiedWebhook.event_id`, never an unverified header. An id must be remembered for at
    least `TOLERANCE_S` (older signatures are refused anyway), and for the retry span too to drop retries of
    an event already handled; bounded by count here, a shared store with a TTL in a multi-process
    receiver."""

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
    # bytes on both sides: compare_digest raises TypeError on a non-ASCII str (a forged header)
    given = header.removeprefix("sha256=").encode("utf-8", "replace")
    if not hmac.compare_digest(expected.encode("ascii"), given):
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


def _twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> bytes:
    signed = url + "".join(name + params[name] for name in sorted(params))
    mac = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(mac)


def _url_port_variants(url: str) -> list[str]:
    """The URL as given, then with its default port removed or added: Twilio may sign either form, and its
    own `RequestValidator` accepts both."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if port is not None:
        netloc = parts.netloc.rsplit(":", 1)[0]
    elif default is not None:
        netloc = f"{parts.netloc}:{default}"
    else:
        return [url]
    return [url, urlunsplit(parts._replace(netloc=netloc))]


def verify_twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> None:
    """Twilio (SMS, MMS, WhatsApp webhooks): `X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL + every
    POST parameter's name and value concatenated, sorted by name))`, with `url` the webhook URL exactly as
    configured in Twilio, query string included (Twilio docs, "Webhooks security" › "Validate signatures").
    Raises InvalidSignature when it does not match."""
    if not signature:
        raise InvalidSignature("missing X-Twilio-Signature header")
    given = signature.strip().encode("utf-8", "replace")
    for candidate in _url_port_variants(url):
        if hmac.compare_digest(_twilio_signature(auth_token, candidate, params), given):
            return
    raise InvalidSignature("X-Twilio-Signature does not match the URL and parameters")
