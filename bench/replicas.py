"""Replicas (issue #16): ingest msg/s, webhook-ack latency and the time until the pipelines are done with 1
and 2 `replydesk worker` processes, and 1 and 2 API replicas, side by side in one run on one PostgreSQL.

The topology is `scripts/topology.py` (compose.yaml's processes without containers): 2 × `replydesk serve`
(REPLYDESK_WORKERS_ENABLED=false) and 2 × `replydesk worker` on a fresh database, 127.0.0.1, no LLM
(template drafts), REPLYDESK_WHATSAPP_APP_SECRET set. It starts once. A configuration with 1 worker is the
same topology with the second worker paused (SIGSTOP; SIGCONT resumes it): a paused process takes no CPU and
claims no work, and it is only paused once every pipeline is done, so it holds no lease. A configuration with
1 API sends every request to the first API (the second one idles). So every configuration runs on the same
warm processes, one after the other, in reverse order every other round (drift in the machine's load then
hits them alike); a short warm-up phase runs first.

Each phase drives the API(s) for `seconds` with closed-loop clients, requests spread over the APIs in turn:
`webhook_clients` post signed WhatsApp Cloud API webhooks of one message each (`bench.channel_ack.Payloads`:
Meta's shape, `X-Hub-Signature-256`, unique wamid, sender and text), acknowledged at once and triaged and
drafted by the workers (REPLYDESK_CHANNEL_PIPELINE=background, the default); `message_clients` post
`POST /v1/messages` (the pipeline runs in the request). Measured per phase:

* ingest msg/s: messages acknowledged (both routes) / `seconds`;
* webhook ack p50/p95 (client wall time to the 200) and `/v1/messages` p50/p95;
* pipelines done: from the end of the load until no message of the phase is `pending` (PostgreSQL, polled
  every 0.25 s), and the workers' pipeline throughput = webhook messages / (phase start to that moment).

Ratios: 2 workers over 1 worker (same API count), 2 APIs over 1 API (same worker count). On 2 cores every
process competes for the same CPUs: see the README's "Replicas" figures for what a bigger machine changes.

`python -m bench.replicas` (defaults: 2 rounds of the 4 configurations x 10 s, 4 webhook + 2 message
clients; about 4-5 minutes on 2 cores with start-up) writes `bench/results/replicas-<UTC time>.json`; `make
bench` runs it as part of `python -m bench.run` (`--only replicas`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import write_result
from bench.channel_ack import APP_SECRET, Payloads
from bench.console import _code_version, stats
from bench.load import message
from scripts.topology import Topology, libpq_dsn

Log = Callable[[str], None]

# (API replicas, workers) measured, in the order of a round
CONFIGS: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (2, 1), (2, 2))
URGENCIES = ("critical", "high", "normal", "low")
REQUEST_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 240.0


@dataclass
class Phase:
    apis: int
    workers: int
    round: int
    webhook_ms: list[float] = field(default_factory=list)
    messages_ms: list[float] = field(default_factory=list)
    webhook_messages: int = 0
    api_messages: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    load_s: float = 0.0
    drain_s: float | None = None  # end of load -> no pending pipeline
    pipeline_s: float | None = None  # start of load -> no pending pipeline
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1

    def summary(self) -> dict[str, Any]:
        ingested = self.webhook_messages + self.api_messages
        return {
            "apis": self.apis,
            "workers": self.workers,
            "round": self.round,
            "load_s": round(self.load_s, 1),
            "ingested": {"webhook": self.webhook_messages, "messages": self.api_messages},
            "ingest_msgs_per_s": round(ingested / self.load_s, 1) if self.load_s else None,
            "webhook_ack_ms": stats(self.webhook_ms),
            "messages_ack_ms": stats(self.messages_ms),
            "pipelines_done_after_load_s": None if self.drain_s is None else round(self.drain_s, 1),
            "worker_pipelines_per_s": (
                round(self.webhook_messages / self.pipeline_s, 1) if self.pipeline_s else None
            ),
            "errors": self.errors,
        }


def _webhook_client(topo: Topology, phase: Phase, apis: int, seed: int, until: float) -> None:
    payloads = Payloads(APP_SECRET, seed=seed)
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
        i = seed
        while time.monotonic() < until:
            hook = payloads.webhook(1)
            url = topo.api_urls[i % apis]
            i += 1
            t0 = time.perf_counter()
            try:
                r = http.post(
                    f"{url}/v1/channels/whatsapp/webhook",
                    params={"api_key": topo.api_key},
                    content=hook.body,
                    headers={"Content-Type": "application/json", "X-Hub-Signature-256": hook.signature},
                )
            except httpx.HTTPError as exc:
                phase.error(type(exc).__name__)
                continue
            ms = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                phase.error(f"webhook {r.status_code}")
                continue
            with phase.lock:
                phase.webhook_ms.append(ms)
                phase.webhook_messages += int(r.json().get("ingested", 0))


def _message_client(topo: Topology, phase: Phase, apis: int, seed: int, until: float) -> None:
    rng = random.Random(seed)
    nonce = f"{phase.round}-{phase.apis}{phase.workers}-{seed}-{os.getpid()}"
    headers = {"Authorization": f"Bearer {topo.api_key}"}
    with httpx.Client(timeout=REQUEST_TIMEOUT_S, headers=headers) as http:
        i = 0
        while time.monotonic() < until:
            text, locale = message(rng, nonce, i)
            url = topo.api_urls[(seed + i) % apis]
            body = {
                "channel": "webchat",
                "conversation_external_id": f"replicas-{nonce}-{i}",
                "customer": {"id": f"c-{nonce}-{i}", "locale": locale},
                "text": text,
                "sent_at": datetime.now(UTC).isoformat(),
                "idempotency_key": f"replicas-{nonce}-{i}",
            }
            i += 1
            t0 = time.perf_counter()
            try:
                r = http.post(f"{url}/v1/messages", json=body)
            except httpx.HTTPError as exc:
                phase.error(type(exc).__name__)
                continue
            ms = (time.perf_counter() - t0) * 1000
            if r.status_code not in (200, 201):
                phase.error(f"messages {r.status_code}")
                continue
            with phase.lock:
                phase.messages_ms.append(ms)
                phase.api_messages += 1


def _pending(topo: Topology) -> int:
    with psycopg.connect(libpq_dsn(topo.database_url)) as con:
        row = con.execute("select count(*) from messages where pipeline_status = 'pending'").fetchone()
    return int(row[0]) if row else 0


def _wait_drained(topo: Topology) -> float | None:
    """Seconds until no pipeline is pending (None after DRAIN_TIMEOUT_S)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < DRAIN_TIMEOUT_S:
        if _pending(topo) == 0:
            return time.monotonic() - t0
        time.sleep(0.25)
    return None


def run_phase(
    topo: Topology, phase: Phase, *, seconds: float, webhook_clients: int, message_clients: int
) -> None:
    t_start = time.monotonic()
    until = t_start + seconds
    threads = [
        threading.Thread(target=_webhook_client, args=(topo, phase, phase.apis, 100 * phase.round + n, until))
        for n in range(webhook_clients)
    ] + [
        threading.Thread(target=_message_client, args=(topo, phase, phase.apis, 100 * phase.round + n, until))
        for n in range(message_clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + REQUEST_TIMEOUT_S + 10)
    t_end = time.monotonic()
    phase.load_s = t_end - t_start
    drained = _wait_drained(topo)
    if drained is not None:
        phase.drain_s = drained
        phase.pipeline_s = time.monotonic() - t_start


def _set_workers(topo: Topology, workers: int, paused: set[int]) -> None:
    """Pause (SIGSTOP) or resume (SIGCONT) the workers beyond `workers`; only called with nothing pending."""
    for p in topo.procs:
        if p.kind != "worker" or p.pid is None:
            continue
        if p.index >= workers and p.index not in paused:
            os.kill(p.pid, signal.SIGSTOP)
            paused.add(p.index)
        elif p.index < workers and p.index in paused:
            os.kill(p.pid, signal.SIGCONT)
            paused.discard(p.index)


GETTERS: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "ingest_msgs_per_s": lambda p: p["ingest_msgs_per_s"],
    "webhook_ack_p50_ms": lambda p: p["webhook_ack_ms"].get("p50"),
    "webhook_ack_p95_ms": lambda p: p["webhook_ack_ms"].get("p95"),
    "messages_ack_p95_ms": lambda p: p["messages_ack_ms"].get("p95"),
    "pipelines_done_after_load_s": lambda p: p["pipelines_done_after_load_s"],
    "worker_pipelines_per_s": lambda p: p["worker_pipelines_per_s"],
}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def means(phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration, the mean over the rounds of each figure."""
    out = []
    for apis, workers in sorted({(p["apis"], p["workers"]) for p in phases}):
        mine = [p for p in phases if p["apis"] == apis and p["workers"] == workers]
        row: dict[str, Any] = {"apis": apis, "workers": workers, "rounds": len(mine)}
        for name, get in GETTERS.items():
            value = _mean([get(p) for p in mine])
            row[name] = None if value is None else round(value, 1)
        out.append(row)
    return out


def ratios(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """2 workers / 1 worker at each API count, 2 APIs / 1 API at each worker count (means over rounds)."""

    def metric(apis: int, workers: int, get: Callable[[dict[str, Any]], float | None]) -> float | None:
        return _mean([get(p) for p in phases if p["apis"] == apis and p["workers"] == workers])

    getters = GETTERS
    out: dict[str, Any] = {}
    for apis in (1, 2):
        out[f"2_workers_over_1_with_{apis}_api"] = {
            name: _ratio(metric(apis, 2, get), metric(apis, 1, get)) for name, get in getters.items()
        }
    for workers in (1, 2):
        out[f"2_apis_over_1_with_{workers}_worker"] = {
            name: _ratio(metric(2, workers, get), metric(1, workers, get)) for name, get in getters.items()
        }
    return out


def run_replicas_bench(
    *,
    rounds: int = 2,
    seconds: float = 10.0,
    webhook_clients: int = 4,
    message_clients: int = 2,
    configs: Sequence[tuple[int, int]] = CONFIGS,
    log: Log = print,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "replicas",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "code": _code_version(),
        "rounds": rounds,
        "seconds_per_phase": seconds,
        "clients": {"webhook": webhook_clients, "messages": message_clients},
        "settings": {
            "topology": "scripts/topology.py: 2 x replydesk serve (REPLYDESK_WORKERS_ENABLED=false) + 2 x "
            "replydesk worker on one local PostgreSQL, 127.0.0.1, no LLM (template drafts), "
            "REPLYDESK_PIPELINE_WORKERS default per worker; 1-worker configurations pause the second worker "
            "(SIGSTOP), 1-API configurations send every request to the first API",
            "webhook": "signed WhatsApp Cloud API webhook, 1 message per POST, pipeline in the workers",
            "messages": "POST /v1/messages, pipeline in the request",
        },
    }
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="replydesk-replicas-"))
    topo = Topology(
        root / "topology",
        apis=max(a for a, _ in configs),
        workers=max(w for _, w in configs),
        env={
            "REPLYDESK_WHATSAPP_APP_SECRET": APP_SECRET,
            # no SLA alert falls due during the run: a paused worker never holds a half-done SLA transaction
            "REPLYDESK_SLA_FIRST_RESPONSE_MINUTES": json.dumps(dict.fromkeys(URGENCIES, 600)),
            "REPLYDESK_SLA_NEXT_RESPONSE_MINUTES": json.dumps(dict.fromkeys(URGENCIES, 600)),
        },
    )
    log(f"starting {topo.apis} API + {topo.workers} worker processes on PostgreSQL")
    topo.start()
    paused: set[int] = set()
    phases: list[dict[str, Any]] = []
    try:
        result["startup_s"] = round(time.perf_counter() - t0, 1)
        log(f"  up in {result['startup_s']} s: {', '.join(topo.api_urls)}")
        warm = Phase(apis=topo.apis, workers=topo.workers, round=-1)
        run_phase(topo, warm, seconds=3, webhook_clients=webhook_clients, message_clients=message_clients)
        for r in range(rounds):
            order = list(configs) if r % 2 == 0 else list(reversed(configs))
            for apis, workers in order:
                _set_workers(topo, workers, paused)
                phase = Phase(apis=apis, workers=workers, round=r)
                run_phase(
                    topo,
                    phase,
                    seconds=seconds,
                    webhook_clients=webhook_clients,
                    message_clients=message_clients,
                )
                s = phase.summary()
                phases.append(s)
                log(
                    f"  [{apis} API, {workers} worker(s)] {s['ingest_msgs_per_s']} msg/s, webhook ack p50 "
                    f"{s['webhook_ack_ms'].get('p50')} p95 {s['webhook_ack_ms'].get('p95')} ms, "
                    f"/v1/messages p95 {s['messages_ack_ms'].get('p95')} ms, pipelines done "
                    f"{s['pipelines_done_after_load_s']} s after the load ({s['worker_pipelines_per_s']} "
                    f"pipelines/s), errors {s['errors']}"
                )
        result["phases"] = phases
        result["means"] = means(phases)
        result["ratios"] = ratios(phases)
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        result["seconds"] = round(time.perf_counter() - t0, 1)
        return result
    finally:
        _set_workers(topo, topo.workers, paused)  # a paused process would not see the SIGTERM of stop()
        topo.stop()


def table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    rows = [
        f"{result.get('rounds')} round(s) of {result.get('seconds_per_phase')} s per configuration, "
        f"{result['clients']['webhook']} webhook + {result['clients']['messages']} /v1/messages clients; "
        f"{result.get('cpus')} CPUs, load average {result.get('load_average_at_start')} at start",
        "",
        "| APIs | workers | ingest msg/s | webhook ack p50 / p95 ms | /v1/messages p50 / p95 ms | "
        "pipelines done after the load s | worker pipelines/s | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in result.get("phases", []):
        w, m = p["webhook_ack_ms"], p["messages_ack_ms"]
        rows.append(
            f"| {p['apis']} | {p['workers']} | {p['ingest_msgs_per_s']} | {w.get('p50')} / {w.get('p95')} | "
            f"{m.get('p50')} / {m.get('p95')} | {p['pipelines_done_after_load_s']} | "
            f"{p['worker_pipelines_per_s']} | {sum(p['errors'].values())} |"
        )
    rows += [
        "",
        "| APIs | workers | mean msg/s | mean webhook ack p50 / p95 ms | mean pipelines done after the "
        "load s | mean worker pipelines/s |",
        "|---|---|---|---|---|---|",
    ]
    for m in result.get("means", []):
        rows.append(
            f"| {m['apis']} | {m['workers']} | {m['ingest_msgs_per_s']} | {m['webhook_ack_p50_ms']} / "
            f"{m['webhook_ack_p95_ms']} | {m['pipelines_done_after_load_s']} | "
            f"{m['worker_pipelines_per_s']} |"
        )
    rows += [
        "",
        "| ratio | msg/s | ack p50 | ack p95 | pipelines done | worker pipelines/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result.get("ratios", {}).items():
        rows.append(
            f"| {name} | {r['ingest_msgs_per_s']} | {r['webhook_ack_p50_ms']} | {r['webhook_ack_p95_ms']} | "
            f"{r['pipelines_done_after_load_s']} | {r['worker_pipelines_per_s']} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="Rounds over the configurations.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Load per configuration and round.")
    parser.add_argument("--webhook-clients", type=int, default=4, help="Concurrent webhook clients.")
    parser.add_argument("--message-clients", type=int, default=2, help="Concurrent /v1/messages clients.")
    parser.add_argument(
        "--out", default=None, help="JSON output (default bench/results/replicas-<time>.json)."
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = run_replicas_bench(
        rounds=args.rounds,
        seconds=args.seconds,
        webhook_clients=args.webhook_clients,
        message_clients=args.message_clients,
    )
    path = write_result(result, Path(args.out) if args.out else None, "replicas")
    print(table(result))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
