"""LLM-bound work runs on threads of its own, never on the thread pool that serves every other request.

FastAPI runs each sync route and sync dependency on anyio's default thread pool (40 tokens, shared by the
whole process). A request that may wait seconds for the LLM (triage → articles → drafts: `POST /v1/messages`,
`/v1/triage`, `/v1/drafts`, the channel webhooks) used to hold one of those tokens for the whole wait, so 40
slow LLM calls left `/health` and `GET /v1/queue` queueing behind them (issue #12: 9 s for the queue with a
4.5 s LLM and 120 concurrent ingests). Those routes are `async def` and hand their blocking work to
`LLMWorkPool.run`:

* at most `REPLYDESK_PIPELINE_CONCURRENCY` run at once, each on a worker thread admitted by a
  `CapacityLimiter` of their own (the default pool's tokens stay free for the other routes);
* of those, only `REPLYDESK_PIPELINE_CPU_SLOTS` (default: the CPU cores) compute at once; a thread lends its
  CPU slot while it waits on the LLM (`waiting_on_io`, around the call in `LLMClient`) or on a context
  provider, so dozens of requests waiting on the LLM cost no CPU, and at most that many compete with the
  threads that serve the other routes for the cores and the GIL;
* up to `REPLYDESK_PIPELINE_QUEUE_LIMIT` more wait for a slot without holding any thread;
* beyond that a request is refused at once with `Overloaded` (503, `Retry-After`), which the caller can retry
  (ingest is idempotent), instead of waiting without bound.

`REPLYDESK_PIPELINE_CONCURRENCY=0` runs the work on the shared default pool, as before the change: it exists
so `bench/slow_llm.py` can measure both in one run, not for production.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, TypeVarTuple

from anyio import CapacityLimiter, to_thread

from service.errors import Overloaded
from service.settings import Settings

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# Weight of the newest run in the moving mean that `Retry-After` is estimated from.
EWMA_WEIGHT = 0.2
MAX_RETRY_AFTER_S = 300

# For routes that run through the pool: what a refused request gets (OpenAPI `responses=`).
OVERLOADED_RESPONSE: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "Too many LLM-bound requests are already running or waiting "
        "(`REPLYDESK_PIPELINE_CONCURRENCY` + `REPLYDESK_PIPELINE_QUEUE_LIMIT`): error envelope with code "
        "`overloaded`; retry after `Retry-After` seconds.",
        "headers": {
            "Retry-After": {
                "description": "Seconds after which a retry is likely to be admitted.",
                "schema": {"type": "integer"},
            }
        },
    }
}


@dataclass(frozen=True)
class PoolStats:
    concurrency: int
    queue_limit: int
    cpu_slots: int
    running: int
    waiting: int
    refused: int
    mean_run_s: float | None


class LLMWorkPool:
    """Bounded, queued execution of blocking LLM-bound work for async routes. One per process
    (`Container.llm_work`); safe to share between event loops as long as no two loops wait on it at once."""

    def __init__(self, concurrency: int, queue_limit: int, cpu_slots: int = 0) -> None:
        if concurrency < 0 or queue_limit < 0 or cpu_slots < 0:
            raise ValueError("concurrency, queue_limit and cpu_slots must be >= 0")
        self.concurrency = concurrency
        self.queue_limit = queue_limit
        self.cpu_slots = cpu_slots or os.cpu_count() or 1
        self._limiter = CapacityLimiter(concurrency) if concurrency > 0 else None
        self._cpu = threading.Semaphore(self.cpu_slots)
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting
        self._running = 0
        self._refused = 0
        self._mean_run_s: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMWorkPool:
        return cls(settings.pipeline_concurrency, settings.pipeline_queue_limit, settings.pipeline_cpu_slots)

    @property
    def shares_request_pool(self) -> bool:
        return self._limiter is None

    def stats(self) -> PoolStats:
        with self._lock:
            return PoolStats(
                concurrency=self.concurrency,
                queue_limit=self.queue_limit,
                cpu_slots=self.cpu_slots,
                running=self._running,
                waiting=self._admitted - self._running,
                refused=self._refused,
                mean_run_s=None if self._mean_run_s is None else round(self._mean_run_s, 3),
            )

    async def run(self, func: Callable[[*Ts], T], *args: *Ts) -> T:
        """`func(*args)` on a worker thread admitted by this pool's own limiter; raises `Overloaded` when
        `concurrency + queue_limit` requests are already admitted."""
        if self._limiter is None:  # the shared request pool: the behaviour before issue #12
            return await to_thread.run_sync(func, *args)
        self._admit()
        try:
            return await to_thread.run_sync(self._timed, func, args, limiter=self._limiter)
        finally:
            with self._lock:
                self._admitted -= 1

    def _admit(self) -> None:
        with self._lock:
            if self.queue_limit and self._admitted >= self.concurrency + self.queue_limit:
                self._refused += 1
                waiting = self._admitted - self._running
                retry_after = self._retry_after_s(waiting)
                raise Overloaded(
                    f"{self._running} LLM-bound requests are running and {waiting} waiting (limits "
                    f"{self.concurrency} + {self.queue_limit}); retry in {retry_after} s",
                    details={"retry_after_s": retry_after, "running": self._running, "waiting": waiting},
                )
            self._admitted += 1

    def _retry_after_s(self, waiting: int) -> int:
        """Time for the queue ahead to drain: one mean run per `concurrency` waiting requests, plus one."""
        mean = self._mean_run_s if self._mean_run_s is not None else 1.0
        rounds = waiting / self.concurrency + 1
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(mean * rounds)))

    def _timed(self, func: Callable[[*Ts], T], args: tuple[*Ts]) -> T:
        with self._lock:
            self._running += 1
        started = time.perf_counter()
        self._cpu.acquire()
        _holder.pool = self
        try:
            return func(*args)
        finally:
            _holder.pool = None
            self._cpu.release()
            elapsed = time.perf_counter() - started
            with self._lock:
                self._running -= 1
                self._mean_run_s = (
                    elapsed
                    if self._mean_run_s is None
                    else (1 - EWMA_WEIGHT) * self._mean_run_s + EWMA_WEIGHT * elapsed
                )


_holder = threading.local()  # `.pool`: the pool whose CPU slot this worker thread holds


@contextmanager
def waiting_on_io() -> Iterator[None]:
    """Around a blocking wait that needs no CPU (the LLM call): a pool thread lends its CPU slot meanwhile,
    so while dozens of requests wait on the LLM at most `cpu_slots` of them compute at once, competing with
    the threads that serve the other routes for the cores and the GIL. Elsewhere it does nothing."""
    pool: LLMWorkPool | None = getattr(_holder, "pool", None)
    if pool is None:
        yield
        return
    _holder.pool = None
    pool._cpu.release()
    try:
        yield
    finally:
        pool._cpu.acquire()
        _holder.pool = pool


def io_bound(func: Callable[[*Ts], T]) -> Callable[[*Ts], T]:
    """`func` (a blocking call that mostly waits on the network) run under `waiting_on_io`."""

    def call(*args: *Ts) -> T:
        with waiting_on_io():
            return func(*args)

    return call
