"""Per-key request limits (moving window) on top of the `limits` library, counted where
`REPLYDESK_RATE_LIMIT_STORAGE` says: `memory://` in this process, `redis://host:port` in a Redis every replica
shares (one budget per key across all of them).

Outage behaviour, chosen so that a Redis blip never stops the API:

* at start-up the storage must answer (`limits`' own `storage.check()`, a PING for Redis): an unreachable or
  misspelled storage URL stops the process with a clear error instead of running without shared limits;
* at run time, when the shared storage fails (connection refused, or no answer within `STORAGE_TIMEOUT_S`),
  the request is counted in this process instead (the same limit, per replica: fail open, but still bounded),
  a warning is logged once per outage and the metric `replydesk_rate_limit_local_fallback_total` counts each
  such request. Every `PROBE_EVERY_S` one request pings the storage again; once it answers, counting is
  shared again and the recovery is logged with the number of requests counted locally.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from limits import RateLimitItem, parse
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import CollectorRegistry, Counter

from service.errors import InvalidInput, RateLimited, ServiceUnavailable
from service.redaction import redact

log = logging.getLogger("replydesk.ratelimit")

# How long one request waits for the shared storage before it is counted locally. A Redis round trip on
# loopback or a LAN takes well under a millisecond; half a second only bounds a hung server or a network
# partition (a refused connection fails at once).
STORAGE_TIMEOUT_S = 0.5
# While the shared storage is down, one request per interval pings it (at most STORAGE_TIMEOUT_S); the others
# are counted locally without waiting on it.
PROBE_EVERY_S = 5.0
KEY_PREFIX = "replydesk"  # Redis keys `replydesk:LIMITER/key/<key id>/…`, apart from other users of a Redis
NAMESPACE = "key"


def open_storage(uri: str) -> Storage:
    """The `limits` storage for `uri`, its errors wrapped as `limits.errors.StorageError`; Redis clients get
    short socket timeouts and the `replydesk` key prefix. InvalidInput for an unknown scheme or a missing
    driver (`redis://` needs the `redis` package)."""
    options: dict[str, Any] = {}
    if uri.split(":", 1)[0].startswith(("redis", "valkey")):
        options = {
            "socket_timeout": STORAGE_TIMEOUT_S,
            "socket_connect_timeout": STORAGE_TIMEOUT_S,
            "key_prefix": KEY_PREFIX,
        }
    try:
        storage = storage_from_string(uri, wrap_exceptions=True, **options)
    except ConfigurationError as exc:
        raise InvalidInput(
            f"REPLYDESK_RATE_LIMIT_STORAGE {redact(uri)!r} is not a usable `limits` storage: "
            f"{redact(str(exc))}"
        ) from exc
    if not isinstance(storage, Storage):  # an `async+…` URI: the API counts from sync dependencies
        raise InvalidInput(f"REPLYDESK_RATE_LIMIT_STORAGE {redact(uri)!r}: use a synchronous storage URI")
    return storage


class RateLimiter:
    """Counts requests per API key against its limit (`600/minute`, …) in `storage_uri`.

    Raises InvalidInput (bad URI) or ServiceUnavailable (storage does not answer) when built: the container
    builds it at start-up, so a replica with a wrong Redis URL does not start."""

    def __init__(
        self,
        default: str,
        storage_uri: str = "memory://",
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = default
        parse(default)  # fail at start-up, not on the first request
        self.storage_uri = storage_uri
        self.storage = open_storage(storage_uri)
        if not self.storage.check():
            raise ServiceUnavailable(
                f"rate-limit storage {redact(storage_uri)} does not answer; start it or fix "
                "REPLYDESK_RATE_LIMIT_STORAGE (memory:// counts per process)"
            )
        self._items: dict[str, RateLimitItem] = {}
        self._shared = MovingWindowRateLimiter(self.storage)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None  # clock time the shared storage failed; None while it works
        self._next_probe = 0.0
        self._local_hits = 0  # requests counted locally in the current outage (for the recovery log)
        self.fallback = Counter(
            "replydesk_rate_limit_local_fallback",
            "Requests whose rate limit was counted in this process because the shared rate-limit storage "
            "did not answer",
            registry=registry,
        )

    def _item(self, spec: str) -> RateLimitItem:
        item = self._items.get(spec)
        if item is None:
            item = self._items[spec] = parse(spec)
        return item

    @property
    def shared_down(self) -> bool:
        """Whether requests are being counted locally because the shared storage failed."""
        return self._down_since is not None

    def hit(self, key_id: str, spec: str | None = None) -> None:
        """Count one request of `key_id`; raise RateLimited (429, Retry-After) when its limit is used up."""
        item = self._item(spec or self.default)
        limiter = self._shared if self._use_shared() else self._local
        try:
            allowed = limiter.hit(item, NAMESPACE, key_id)
            reset_time = None if allowed else limiter.get_window_stats(item, NAMESPACE, key_id).reset_time
        except StorageError as exc:
            self._went_down(exc)
            limiter = self._local
            allowed = limiter.hit(item, NAMESPACE, key_id)
            reset_time = None if allowed else limiter.get_window_stats(item, NAMESPACE, key_id).reset_time
        if limiter is self._local:
            self.fallback.inc()
            with self._lock:
                self._local_hits += 1
        if reset_time is None:
            return
        retry_after = max(1, math.ceil(reset_time - time.time()))
        raise RateLimited(
            f"rate limit of {item} exceeded for this API key; retry in {retry_after} s",
            details={"limit": str(item), "retry_after_s": retry_after},
        )

    def _use_shared(self) -> bool:
        """True while the shared storage works; during an outage, True again once a probe (by one request per
        PROBE_EVERY_S, the others not waiting) finds it answering."""
        if self._down_since is None:
            return True
        now = self._clock()
        if now < self._next_probe or not self._lock.acquire(blocking=False):
            return False
        try:
            if now < self._next_probe or self._down_since is None:
                return self._down_since is None
            if not self.storage.check():
                self._next_probe = now + PROBE_EVERY_S
                return False
            log.warning(
                "rate-limit storage %s answers again after %.1f s; limits are shared again (%d requests were "
                "counted in this process meanwhile)",
                redact(self.storage_uri),
                now - self._down_since,
                self._local_hits,
                extra={"warning": "rate_limit_storage_recovered"},
            )
            self._down_since, self._local_hits = None, 0
            return True
        finally:
            self._lock.release()

    def _went_down(self, exc: StorageError) -> None:
        with self._lock:
            now = self._clock()
            self._next_probe = now + PROBE_EVERY_S
            if self._down_since is not None:
                return
            self._down_since = now
        log.warning(
            "rate-limit storage %s failed (%s): counting requests in this process (the same limit per "
            "replica) until it answers again",
            redact(self.storage_uri),
            redact(str(exc.storage_error)),
            extra={"warning": "rate_limit_storage_down"},
        )

    def health(self) -> dict[str, Any]:
        """`ok` while limits are counted where configured, `degraded` while a shared storage is down (each
        replica counts on its own)."""
        detail: dict[str, Any] = {
            "storage": redact(self.storage_uri),
            "shared": self.storage_uri != "memory://",
        }
        if self._down_since is not None:
            detail["local_fallback_for_s"] = round(self._clock() - self._down_since, 1)
            return {"status": "degraded", "detail": detail}
        return {"status": "ok", "detail": detail}
