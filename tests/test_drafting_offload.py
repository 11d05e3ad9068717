"""LLM-bound work (`LLMWorkPool`) runs on threads of its own: never on a token of the thread pool that serves
every other request, at most `concurrency` at once, `queue_limit` more waiting, and the next one refused with
503 + Retry-After. The end-to-end check against a real server and a slow LLM is tests/test_slow_llm.py."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable

import anyio
import pytest
from anyio import to_thread
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.drafting.offload import LLMWorkPool, waiting_on_io
from service.errors import Overloaded, install_error_handlers

DEADLINE_S = 10.0


class Gate:
    """Blocking work that holds its thread until opened: a request waiting on the LLM (it computes first, as
    long as `computing` is closed, on a CPU slot)."""

    def __init__(self, *, computing_open: bool = True) -> None:
        self.started = 0
        self.waiting_on_llm = 0
        self._lock = threading.Lock()
        self._computing = threading.Event()
        self._llm = threading.Event()
        if computing_open:
            self._computing.set()

    def work(self, value: int) -> int:
        with self._lock:
            self.started += 1
        if not self._computing.wait(DEADLINE_S):
            raise TimeoutError("computing never ended")
        with waiting_on_io():
            with self._lock:
                self.waiting_on_llm += 1
            if not self._llm.wait(DEADLINE_S):
                raise TimeoutError("the LLM never answered")
        return value

    def end_computing(self) -> None:
        self._computing.set()

    def open(self) -> None:
        self._computing.set()
        self._llm.set()


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(DEADLINE_S):
        while not condition():
            await anyio.sleep(0.005)


def _run(main: Callable[[], Awaitable[None]]) -> None:
    anyio.run(main)


def test_llm_bound_work_never_borrows_a_token_of_the_shared_request_pool():
    pool, gate = LLMWorkPool(concurrency=4, queue_limit=0), Gate()
    results: list[int] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(lambda i=i: _collect(pool.run(gate.work, i), results))
            await _until(lambda: gate.started == 4)
            assert to_thread.current_default_thread_limiter().borrowed_tokens == 0
            assert pool.stats().running == 4
            gate.open()

    _run(main)
    assert sorted(results) == [0, 1, 2, 3]


def test_zero_concurrency_runs_on_the_shared_request_pool_as_before():
    pool, gate = LLMWorkPool(concurrency=0, queue_limit=0), Gate()
    assert pool.shares_request_pool

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(2):
                tg.start_soon(pool.run, gate.work, i)
            await _until(lambda: gate.started == 2)
            assert to_thread.current_default_thread_limiter().borrowed_tokens == 2
            gate.open()

    _run(main)


def test_work_beyond_the_concurrency_waits_for_a_slot_without_starting():
    pool, gate = LLMWorkPool(concurrency=2, queue_limit=0), Gate()
    results: list[int] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(lambda i=i: _collect(pool.run(gate.work, i), results))
            await _until(lambda: gate.started == 2 and pool.stats().waiting == 1)
            assert gate.started == 2  # the third holds no thread until a slot frees
            gate.open()

    _run(main)
    assert sorted(results) == [0, 1, 2]
    assert pool.stats().running == pool.stats().waiting == 0


def test_a_request_beyond_the_queue_limit_is_refused_with_a_retry_after():
    pool, gate = LLMWorkPool(concurrency=1, queue_limit=1), Gate()
    results: list[int] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(2):
                tg.start_soon(lambda i=i: _collect(pool.run(gate.work, i), results))
            await _until(lambda: gate.started == 1 and pool.stats().waiting == 1)
            with pytest.raises(Overloaded) as refused:
                await pool.run(gate.work, 99)
            assert refused.value.status_code == 503
            assert refused.value.details["retry_after_s"] >= 1
            assert refused.value.details == {**refused.value.details, "running": 1, "waiting": 1}
            gate.open()

    _run(main)
    assert sorted(results) == [0, 1]  # the admitted ones still finish
    assert pool.stats().refused == 1
    assert gate.started == 2


def test_only_cpu_slots_of_the_running_work_compute_at_once_and_a_wait_on_the_llm_lends_the_slot():
    pool, gate = LLMWorkPool(concurrency=4, queue_limit=0, cpu_slots=1), Gate(computing_open=False)
    results: list[int] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(2):
                tg.start_soon(lambda i=i: _collect(pool.run(gate.work, i), results))
            await _until(lambda: gate.started == 1 and pool.stats().running == 2)
            assert gate.started == 1  # the second has its thread but no CPU slot
            gate.end_computing()
            # the first now waits on the LLM and has lent its slot: the second computes meanwhile
            await _until(lambda: gate.waiting_on_llm == 2)
            gate.open()

    _run(main)
    assert sorted(results) == [0, 1]


def test_waiting_on_io_outside_the_pool_changes_nothing():
    with waiting_on_io():  # e.g. the CLI or the background worker calling the LLM
        pass


def test_a_zero_queue_limit_queues_without_bound():
    pool, gate = LLMWorkPool(concurrency=1, queue_limit=0), Gate()
    results: list[int] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(lambda i=i: _collect(pool.run(gate.work, i), results))
            await _until(lambda: pool.stats().waiting == 19)
            gate.open()

    _run(main)
    assert sorted(results) == list(range(20))
    assert pool.stats().refused == 0


def test_an_overloaded_pool_answers_503_in_the_error_envelope_with_retry_after():
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/busy")
    def busy() -> None:
        raise Overloaded("64 running and 256 waiting", details={"retry_after_s": 7})

    r = TestClient(app).get("/busy")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "7"
    assert r.json()["error"]["code"] == "overloaded"


async def _collect(result: Awaitable[int], into: list[int]) -> None:
    into.append(await result)
