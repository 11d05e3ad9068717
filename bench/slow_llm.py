"""A slow LLM must not starve other requests (issue #12): `/health` and `GET /v1/queue` latency while many
LLM-bound ingests wait on a slow LLM, with the LLM-bound work on its own pool and, for comparison, on the
shared request pool (`REPLYDESK_PIPELINE_CONCURRENCY=0`, the behaviour before the fix), in one run.

For each mode: a fresh `replydesk serve` subprocess on 127.0.0.1 (`bench.load.Server`, production settings
otherwise) whose LLM is `SlowLLM`, a local OpenAI-compatible stand-in that sleeps `delay_s` before answering
each request. After a warm-up (with the stand-in answering at once), `ingests` `POST /v1/messages` (unique
texts, one conversation each) are sent at the same moment; from that moment until the last of them has
answered, one prober loops `GET /health` and another `GET /v1/queue`, each waiting `probe_every_s` between its
requests.
Reported: p50 / p95 / max of each probe, the ingests' latencies and errors, how long the burst took, the LLM's
peak concurrent requests, and the shared/own ratios.

`python -m bench.slow_llm` (defaults: 4.5 s LLM, 120 ingests, both modes) writes
`bench/results/slow-llm-<UTC time>.json`; `make bench` runs it as part of `python -m bench.run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import write_result
from bench.stub_llm import StubHandler, StubServer, chat_completion
from service.settings import Settings

MODES = {"own": None, "shared": "0"}  # value of REPLYDESK_PIPELINE_CONCURRENCY (None: the default)
REQUEST_TIMEOUT_S = 180.0
DEFAULT_CONCURRENCY = Settings.model_fields["pipeline_concurrency"].default

# What the stand-in answers: a valid draft reply (`LLMReply`) or agent note (`LLMHandoff`), in English.
DRAFT_REPLY = {
    "language": "en",
    "drafts": [
        "Hi, thanks for getting in touch. You can follow your parcel under Orders in the Northwind app; "
        "tap the order, then Track package."
    ],
    "cited_article_ids": [],
    "needs_human": False,
    "missing_info": [],
}
HANDOFF_REPLY = {"wants": "The customer wants to know where the order is.", "known": [], "missing": []}


@dataclass
class SlowLLM:
    """OpenAI-compatible `/v1/chat/completions` on 127.0.0.1 that sleeps `delay_s` per request (any number at
    once, one thread each); counts requests in flight and their peak. With `held`, a request waits until
    `release()` instead (`delay_s` at most). Also used by tests/test_slow_llm.py."""

    delay_s: float
    held: bool = False
    calls: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _server: StubServer | None = None
    _released: threading.Event = field(default_factory=threading.Event)

    def start(self) -> SlowLLM:
        stub = self

        class Handler(StubHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                self.read_body()
                prompt = self.headers.get("X-ReplyDesk-Prompt", "")
                with stub._cond:
                    stub.calls += 1
                    stub.in_flight += 1
                    stub.peak_in_flight = max(stub.peak_in_flight, stub.in_flight)
                    stub._cond.notify_all()
                    delay = stub.delay_s
                try:
                    if stub.held:
                        stub._released.wait(delay)
                    else:
                        time.sleep(delay)
                    answer = HANDOFF_REPLY if prompt.startswith("handoff") else DRAFT_REPLY
                    self.send_json(200, _completion(json.dumps(answer)))
                finally:
                    with stub._cond:
                        stub.in_flight -= 1
                        stub._cond.notify_all()

        self._server = StubServer(Handler).start()
        return self

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return self._server.base_url

    def wait_in_flight(self, n: int, timeout_s: float) -> bool:
        """Whether `n` requests were waiting on the stand-in at once within `timeout_s`."""
        with self._cond:
            return self._cond.wait_for(lambda: self.in_flight >= n, timeout=timeout_s)

    def release(self) -> None:
        """Answer every held request now, and later ones at once."""
        self._released.set()

    def reset_counts(self) -> None:
        with self._cond:
            self.calls, self.peak_in_flight = 0, self.in_flight

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.stop()


def _completion(content: str) -> bytes:
    body = chat_completion(
        content, completion_id="cmpl-slow", model="slow-stub", prompt_tokens=100, completion_tokens=40
    )
    return json.dumps(body).encode()


def _stats(values_ms: list[float]) -> dict[str, Any]:
    if not values_ms:
        return {"n": 0}
    a = np.asarray(values_ms)
    return {
        "n": len(values_ms),
        "p50": round(float(np.percentile(a, 50)), 1),
        "p95": round(float(np.percentile(a, 95)), 1),
        "max": round(float(a.max()), 1),
    }


@dataclass(frozen=True)
class Probe:
    path: str
    sent_s: float  # since the ingests were sent
    ms: float
    llm_in_flight: int  # LLM calls waiting on the stand-in when the probe was sent
    ok: bool


async def _burst(
    base_url: str, api_key: str, llm: SlowLLM, *, ingests: int, probe_every_s: float
) -> tuple[list[Probe], list[tuple[float, int]], float]:
    """`ingests` concurrent ingests; `/health` and `/v1/queue` probed until the last one answered.

    Open-loop probes: one of each is sent every `probe_every_s` whether or not the previous one answered, so a
    route stuck for 10 s shows up as 10 s worth of slow probes, not as one sample."""
    headers = {"Authorization": f"Bearer {api_key}"}
    nonce = uuid.uuid4().hex[:8]
    probes: list[Probe] = []
    limits = httpx.Limits(max_connections=ingests + 8, max_keepalive_connections=ingests + 8)
    async with (
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S, limits=limits) as c,
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S) as prober,
    ):
        t_start = time.perf_counter()

        async def ingest(i: int) -> tuple[float, int]:
            body = {
                "channel": "whatsapp",
                "conversation_external_id": f"slow-llm-{nonce}-{i}",
                "customer": {"id": f"slow-llm-{nonce}-{i}", "locale": "en-GB"},
                "text": f"Hi, where is my order A{10000 + i}? It was due on Monday. (ref {nonce}-{i})",
                "sent_at": "2026-01-05T09:00:00Z",
                "idempotency_key": f"slow-llm-{nonce}-{i}",
            }
            t0 = time.perf_counter()
            try:
                r = await c.post("/v1/messages", json=body)
                status = r.status_code
            except httpx.HTTPError:
                status = 0
            return (time.perf_counter() - t0) * 1000, status

        async def probe(path: str) -> None:
            t0 = time.perf_counter()
            in_flight = llm.in_flight
            try:
                r = await prober.get(path)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            probes.append(Probe(path, t0 - t_start, (time.perf_counter() - t0) * 1000, in_flight, ok))

        async def prober_loop(done: asyncio.Future[Any]) -> list[asyncio.Task[None]]:
            sent: list[asyncio.Task[None]] = []
            while not done.done():
                sent += [asyncio.create_task(probe(p)) for p in ("/health", "/v1/queue")]
                await asyncio.wait([done], timeout=probe_every_s)
            return sent

        burst = asyncio.ensure_future(asyncio.gather(*(ingest(i) for i in range(ingests))))
        sent = await prober_loop(burst)
        outcomes = await burst
        elapsed = time.perf_counter() - t_start
        await asyncio.gather(*sent)
    failed = [p for p in probes if not p.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} probes failed, e.g. {failed[0]}")
    return sorted(probes, key=lambda p: p.sent_s), list(outcomes), elapsed


def run_mode(mode: str, *, delay_s: float, ingests: int, probe_every_s: float, log) -> dict[str, Any]:
    from bench.load import Server

    llm = SlowLLM(delay_s=0.0).start()
    env = {"REPLYDESK_LLM_BASE_URL": llm.base_url}
    if MODES[mode] is not None:
        env["REPLYDESK_PIPELINE_CONCURRENCY"] = str(MODES[mode])
    server = Server.create(extra_env=env)
    try:
        startup_s = server.start()
        server.warm()  # the stand-in answers at once here
        llm.delay_s = delay_s
        llm.reset_counts()
        log(f"  [{mode}] server up in {startup_s:.1f} s; {ingests} ingests on a {delay_s} s LLM")
        probes, outcomes, elapsed = asyncio.run(
            _burst(server.base_url, server.api_key, llm, ingests=ingests, probe_every_s=probe_every_s)
        )
        statuses: dict[str, int] = {}
        for _, status in outcomes:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        ok = [ms for ms, status in outcomes if 200 <= status < 300]
        result: dict[str, Any] = {
            "mode": mode,
            "pipeline_concurrency": int(env.get("REPLYDESK_PIPELINE_CONCURRENCY", DEFAULT_CONCURRENCY)),
            "startup_s": round(startup_s, 1),
            "health_ms": _stats([p.ms for p in probes if p.path == "/health"]),
            "queue_ms": _stats([p.ms for p in probes if p.path == "/v1/queue"]),
            "ingest_ms": _stats(ok),
            "ingest_statuses": statuses,
            "ingest_errors": len(outcomes) - len(ok),
            "burst_s": round(elapsed, 2),
            "llm_calls": llm.calls,
            "llm_peak_in_flight": llm.peak_in_flight,
            "timeline": [[p.path, round(p.sent_s, 2), round(p.ms, 1), p.llm_in_flight] for p in probes],
        }
        log(
            f"  [{mode}] /health p50 {result['health_ms'].get('p50')} p95 {result['health_ms'].get('p95')} "
            f"max {result['health_ms'].get('max')} ms; /v1/queue p50 {result['queue_ms'].get('p50')} p95 "
            f"{result['queue_ms'].get('p95')} max {result['queue_ms'].get('max')} ms; burst {elapsed:.1f} s, "
            f"{result['ingest_errors']} errors, LLM peak {llm.peak_in_flight} at once"
        )
        return result
    finally:
        server.stop()
        server.cleanup()
        llm.stop()


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 1) if a is not None and b else None


def run_slow_llm_bench(
    *,
    delay_s: float = 4.5,
    ingests: int = 120,
    probe_every_s: float = 0.2,
    modes: tuple[str, ...] = ("shared", "own"),
    log=print,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "slow-llm",
        "llm_delay_s": delay_s,
        "ingests": ingests,
        "probe_every_s": probe_every_s,
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "modes": {},
    }
    for mode in modes:
        result["modes"][mode] = run_mode(
            mode, delay_s=delay_s, ingests=ingests, probe_every_s=probe_every_s, log=log
        )
    shared, own = result["modes"].get("shared"), result["modes"].get("own")
    if shared and own:
        result["shared_over_own"] = {
            f"{probe}_{stat}": _ratio(shared[probe].get(stat), own[probe].get(stat))
            for probe in ("health_ms", "queue_ms")
            for stat in ("p50", "p95", "max")
        } | {"burst_s": _ratio(shared["burst_s"], own["burst_s"])}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_llm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=4.5, help="Seconds the stand-in LLM sleeps per call.")
    parser.add_argument("--ingests", type=int, default=120, help="Concurrent POST /v1/messages.")
    parser.add_argument("--probe-every", type=float, default=0.2, help="Pause between probes, in seconds.")
    parser.add_argument(
        "--mode", action="append", choices=sorted(MODES), help="Run only these modes (default: both)."
    )
    parser.add_argument(
        "--out", default=None, help="JSON output (default bench/results/slow-llm-<time>.json)."
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = run_slow_llm_bench(
        delay_s=args.delay,
        ingests=args.ingests,
        probe_every_s=args.probe_every,
        modes=tuple(args.mode or ("shared", "own")),
    )
    path = write_result(result, Path(args.out) if args.out else None, "slow-llm")
    print(json.dumps(result.get("shared_over_own", {}), indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
