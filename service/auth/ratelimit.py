"""Per-key request limit (moving window, in process memory) on top of the `limits` library."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from service.errors import RateLimited


class RateLimiter:
    def __init__(self, default: str) -> None:
        self.default = default
        self._items: dict[str, RateLimitItem] = {}
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        parse(default)  # fail at start-up, not on the first request

    def _item(self, spec: str) -> RateLimitItem:
        item = self._items.get(spec)
        if item is None:
            item = self._items[spec] = parse(spec)
        return item

    def hit(self, key_id: str, spec: str | None = None) -> None:
        """Count one request of `key_id`; raise RateLimited (429) when its limit is used up."""
        item = self._item(spec or self.default)
        if self._limiter.hit(item, "key", key_id):
            return
        stats = self._limiter.get_window_stats(item, "key", key_id)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"rate limit of {item} exceeded for this API key; retry in {retry_after} s",
            details={"limit": str(item), "retry_after_s": retry_after},
        )
