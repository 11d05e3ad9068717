"""The agent console's figures for issue #13 (`replydesk bench console`): server time per page with many open
conversations and a long thread, next to the JSON API, and the time from an ingest to its row in a browser.

One real `replydesk serve` (`bench.load.Server`: 127.0.0.1, its own data directory, production settings except
the ones named below), seeded over HTTP, before anything is measured, with:

* `conversations` open conversations, one `POST /v1/messages` each (unique customer names, `clients`
  concurrent clients; the full pipeline, template drafts as no LLM is configured);
* one conversation with a `thread`-message thread: customer messages (`POST /v1/messages`) and agent replies
  (`POST /v1/conversations/{id}/reply`) in turn, ending with a customer message, and channel receipts
  (`POST /v1/messages/{id}/status`, an integration key) on the replies: every one `sent`, two in three
  `delivered`, one in three `read`.

Server time per page: the console pages (`/console/queue`, its `?fragment=rows`, `/console/conversations/{id}`
of the long thread, its `?fragment=thread`, `/console/kpis`) and, side by side in the same run, the JSON API
they stand on (`GET /v1/queue?limit=<the console's row limit>`, `GET /v1/conversations/{id}`), all with the
same agent key (`Authorization: Bearer`, no sign-in). After `warmup` requests each, `requests` rounds; a round
requests every page once, in turn, one request at a time, so drift in the machine's load hits every page
alike. The time is the client's wall time per request on loopback with a kept-alive connection (the service
reports no server-side timing); the server's CPU time per request (`/proc`, user + system, over all rounds) is
given as well. Opening a conversation as an agent also records presence and marks it read, as in the console.

Ingest → queue row in the browser: Debian's Chromium under Playwright (headless) opens `/console/queue` with
the agent key as a header, waits 1 s for the server-sent events connection, then `browser_samples` times
`POST /v1/messages` for a new conversation with a unique customer name and waits until that name shows on the
page (the SSE `queue` signal, then htmx re-fetches the rows fragment). Each sample starts at a random moment
of the stream's poll cycle. The stream looks for new events every `REPLYDESK_EVENTS_POLL_S` seconds: measured
at 0.25 s and, on a restart of the same server and data, at the default (1.0 s).

Settings that differ from production: `REPLYDESK_EVENTS_POLL_S` (above) and SLA targets of 8 h for every
urgency, so that no conversation turns at risk or breached while the bench runs: the queue is ordered by SLA
state first, and a seeded conversation turning at risk would push the new ones out of the console's rows. The
new conversations are critical (a hacked account) and the seeded ones are not, so the new rows sort first.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from bench.load import TEMPLATES, Server, free_port, message
from service.settings import REPO_ROOT, Settings

if TYPE_CHECKING:  # playwright is imported lazily: `replydesk bench` must load without it
    from playwright.sync_api import Request

Log = Callable[[str], None]

DEFAULT_OUT = REPO_ROOT / "bench" / "results" / "console.json"
CHROMIUM_PATH = Path("/usr/bin/chromium")
# Chromium in a container runs as root without a GPU; the rest keeps it from calling home, so nothing goes
# beyond 127.0.0.1 (tests/browser_support.py launches with these too).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAST_POLL_S = 0.25
DEFAULT_POLL_S: float = Settings.model_fields["events_poll_s"].default
QUEUE_LIMIT: int = Settings.model_fields["console_queue_limit"].default
SLA_MINUTES = {"critical": 480.0, "high": 480.0, "normal": 480.0, "low": 480.0}
KEY_RATE_LIMIT = "1000000/minute"
REQUEST_TIMEOUT_S = 60.0
ROW_TIMEOUT_S = 15.0  # a queue row not seen by then is an error, not a sample
SSE_SETTLE_S = 1.0
# Whether the queue rows show `name`, checked on every animation frame (about 16 ms apart). Not
# `page.wait_for_selector("text=...")`: Playwright re-checks a selector with back-off (20, 50, 100, 100, then
# every 500 ms), which adds up to half a second to a row that takes longer than ~0.3 s to come.
ROW_SHOWN_JS = """name => {
    const rows = document.getElementById("queue-rows");
    return rows !== null && rows.textContent.includes(name);
}"""
# The seeded conversations: every load template but the one about a taken-over account (critical).
SEED_TEMPLATES = [t for t in TEMPLATES if "logged into my account" not in t[0]]
LIVE_TEXT = "Someone hacked my account and made an unauthorised charge on my card, please block it now"
REPLY_TEXT = "Thanks for your patience. I'm checking this with the courier now and will update you shortly."


@dataclass(frozen=True)
class Keys:
    agent: str
    integration: str

    def bearer(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


def stats(values_ms: list[float]) -> dict[str, Any]:
    if not values_ms:
        return {"n": 0}
    a = np.asarray(values_ms)
    return {
        "n": len(values_ms),
        "p50": round(float(np.percentile(a, 50)), 1),
        "p95": round(float(np.percentile(a, 95)), 1),
        "max": round(float(a.max()), 1),
        "mean": round(float(a.mean()), 1),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _create_keys(server: Server) -> Keys:
    """An agent and an integration key, made before the server starts (as the browser tests do)."""

    def create(role: str) -> str:
        out = server._cli(
            "keys", "create", "--role", role, "--name", f"bench-{role}", "--rate-limit", KEY_RATE_LIMIT
        )
        return out.strip().splitlines()[-1]

    return Keys(agent=create("agent"), integration=create("integration"))


# -- seeding -------------------------------------------------------------------------------------------------


def _customer_message(nonce: str, i: int, text: str, locale: str, *, external_id: str, name: str) -> dict:
    return {
        "channel": ("whatsapp", "webchat", "sms")[i % 3],
        "conversation_external_id": external_id,
        "customer": {"id": f"cust-{external_id}", "name": name, "locale": locale},
        "text": text,
        "sent_at": _now(),
        "idempotency_key": f"bench-console-{nonce}-{external_id}-{i}",
    }


async def _seed_open(
    base_url: str, keys: Keys, n: int, *, clients: int, nonce: str
) -> tuple[list[float], dict[str, int]]:
    rng = random.Random(13)
    bodies = []
    for i in range(n):
        template, locale = rng.choice(SEED_TEMPLATES)
        text = template.format(
            order=f"A{rng.randint(10000, 99999)}", day=rng.choice(["Monday", "Friday"]), item="lamp"
        )
        bodies.append(
            _customer_message(
                nonce, i, text, locale, external_id=f"seed-{nonce}-{i}", name=f"Seed {nonce} {i:04d}"
            )
        )
    todo: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        todo.put_nowait(body)
    latencies: list[float] = []
    urgency: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base_url, headers=keys.bearer(keys.integration), timeout=REQUEST_TIMEOUT_S, limits=limits
    ) as client:

        async def worker() -> None:
            while not todo.empty():
                body = todo.get_nowait()
                t0 = time.perf_counter()
                r = await client.post("/v1/messages", json=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 201:
                    raise RuntimeError(f"seeding: POST /v1/messages answered {r.status_code}: {r.text[:500]}")
                level = r.json()["conversation"]["urgency"]
                urgency[level] = urgency.get(level, 0) + 1

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, urgency


def seed_thread(base_url: str, keys: Keys, messages: int, *, nonce: str) -> dict[str, Any]:
    """One conversation of `messages` messages: customer and agent in turn, the last one the customer's;
    receipts on the agent's replies."""
    rng = random.Random(17)
    external_id = f"thread-{nonce}"
    conversation_id: int | None = None
    counts = {"inbound": 0, "outbound": 0, "receipts": 0}
    with (
        httpx.Client(base_url=base_url, headers=keys.bearer(keys.integration), timeout=60) as channel,
        httpx.Client(base_url=base_url, headers=keys.bearer(keys.agent), timeout=60) as agent,
    ):
        for i in range(messages):
            if i % 2 == 1 and i != messages - 1 and conversation_id is not None:
                r = agent.post(f"/v1/conversations/{conversation_id}/reply", json={"text": REPLY_TEXT})
                if r.status_code != 201:
                    raise RuntimeError(f"seeding: reply answered {r.status_code}: {r.text[:500]}")
                counts["outbound"] += 1
                out = r.json()["message"]
                reply = counts["outbound"]
                steps = ["sent"] + (["delivered"] if reply % 3 else []) + (["read"] if reply % 3 == 0 else [])
                for step in steps:
                    s = channel.post(
                        f"/v1/messages/{out['id']}/status",
                        json={"status": step, "channel_message_id": f"wamid.{nonce}.{i}"},
                    )
                    if s.status_code != 200:
                        raise RuntimeError(f"seeding: receipt answered {s.status_code}: {s.text[:500]}")
                    counts["receipts"] += 1
                continue
            text, locale = message(rng, nonce, i)
            body = _customer_message(nonce, i, text, "en-GB", external_id=external_id, name=f"Thread {nonce}")
            body["channel"] = "whatsapp"
            r = channel.post("/v1/messages", json=body)
            if r.status_code != 201:
                raise RuntimeError(f"seeding: POST /v1/messages answered {r.status_code}: {r.text[:500]}")
            conversation_id = int(r.json()["conversation"]["id"])
            counts["inbound"] += 1
    assert conversation_id is not None
    return {"conversation_id": conversation_id, "messages": counts["inbound"] + counts["outbound"], **counts}


# -- server time per page ------------------------------------------------------------------------------------


def page_targets(conversation_id: int) -> dict[str, str]:
    """name -> path: the console pages, then the JSON API they stand on."""
    return {
        "console_queue": "/console/queue",
        "console_queue_rows": "/console/queue?fragment=rows",
        "console_conversation": f"/console/conversations/{conversation_id}",
        "console_thread": f"/console/conversations/{conversation_id}?fragment=thread",
        "console_kpis": "/console/kpis",
        "api_queue": f"/v1/queue?limit={QUEUE_LIMIT}",
        "api_conversation": f"/v1/conversations/{conversation_id}",
    }


# console page -> the API call showing the same data
COMPARED = {
    "console_queue": "api_queue",
    "console_queue_rows": "api_queue",
    "console_conversation": "api_conversation",
    "console_thread": "api_conversation",
}


def time_pages(
    server: Server, key: str, targets: dict[str, str], *, requests: int, warmup: int
) -> dict[str, Any]:
    """`warmup` requests per target, then `requests` rounds of one sequential request per target."""
    times: dict[str, list[float]] = {name: [] for name in targets}
    sizes: dict[str, int] = {}
    cpu = dict.fromkeys(targets, 0.0)
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:

        def get(name: str) -> float:
            t0 = time.perf_counter()
            r = c.get(targets[name])
            ms = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                raise RuntimeError(f"GET {targets[name]} answered {r.status_code}: {r.text[:500]}")
            sizes[name] = len(r.content)
            return ms

        for name in targets:
            for _ in range(warmup):
                get(name)
        for _ in range(requests):
            for name in targets:
                cpu0 = server.cpu_seconds()
                times[name].append(get(name))
                cpu1 = server.cpu_seconds()
                if cpu0 is not None and cpu1 is not None:
                    cpu[name] += cpu1 - cpu0
    pages: dict[str, Any] = {}
    for name, path in targets.items():
        pages[name] = {
            "path": path,
            "wall_ms": stats(times[name]),
            "server_cpu_ms_per_request": round(cpu[name] * 1000 / requests, 1) if requests else None,
            "bytes": sizes.get(name),
        }
    ratios = {
        f"{page}/{api}": {
            stat: _ratio(pages[page]["wall_ms"].get(stat), pages[api]["wall_ms"].get(stat))
            for stat in ("p50", "p95")
        }
        for page, api in COMPARED.items()
    }
    return {"pages": pages, "console_over_api": ratios}


# -- ingest -> queue row in a browser ------------------------------------------------------------------------


@dataclass
class RowFetches:
    """When the page fetched its queue rows (`?fragment=rows`, the htmx swap on an SSE `queue` signal), by
    the time Playwright reports the request's start and end (events arrive while it waits on the page)."""

    done: list[tuple[float, float]] = field(default_factory=list)
    _open: dict[Request, float] = field(default_factory=dict)

    def started(self, request: Request) -> None:
        if "fragment=rows" in request.url:
            self._open[request] = time.perf_counter()

    def finished(self, request: Request) -> None:
        t0 = self._open.pop(request, None)
        if t0 is not None:
            self.done.append((t0, time.perf_counter()))

    def since(self, t: float, until: float) -> list[tuple[float, float]]:
        return [f for f in self.done if f[0] >= t and f[1] <= until]


def browser_samples(
    base_url: str, keys: Keys, *, samples: int, poll_s: float, nonce: str, log: Log
) -> dict[str, Any]:
    """Chromium on /console/queue; `samples` ingests of a new conversation, each timed until its customer's
    name shows on the page, with where the time went: until the rows fetch that brought the row began (the
    SSE signal: the ingest's commit, the stream's poll, the event to the page), that fetch, and the swap."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    if not CHROMIUM_PATH.is_file():
        raise RuntimeError(f"{CHROMIUM_PATH} is missing: run `bash scripts/browser.sh`")
    rng = random.Random(23)
    run = f"{nonce}{int(poll_s * 1000)}"  # names unique per run: rows from an earlier run stay in the queue
    seen_ms: list[float] = []
    after_ingest_ms: list[float] = []
    ingest_ms: list[float] = []
    signal_ms: list[float] = []
    fetch_ms: list[float] = []
    swap_ms: list[float] = []
    fetches_per_sample: list[int] = []
    rows = RowFetches()
    with (
        sync_playwright() as playwright,
        httpx.Client(base_url=base_url, headers=keys.bearer(keys.integration), timeout=60) as channel,
    ):
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(extra_http_headers=keys.bearer(keys.agent))
            page = context.new_page()
            page.on("request", rows.started)
            page.on("requestfinished", rows.finished)
            page.goto(f"{base_url}/console/queue")
            page.wait_for_selector("#queue-rows")
            page.wait_for_timeout(SSE_SETTLE_S * 1000)  # the SSE connection opens
            for i in range(samples):
                name = f"Live {run} n{i:02d}"
                body = {
                    "channel": "whatsapp",
                    "conversation_external_id": f"live-{run}-{i}",
                    "customer": {"id": f"live-{run}-{i}", "name": name, "locale": "en-GB"},
                    "text": LIVE_TEXT,
                    "sent_at": _now(),
                }
                t0 = time.perf_counter()
                r = channel.post("/v1/messages", json=body)
                t_ingested = time.perf_counter()
                if r.status_code != 201:
                    raise RuntimeError(f"POST /v1/messages answered {r.status_code}: {r.text[:500]}")
                try:
                    page.wait_for_function(
                        ROW_SHOWN_JS, arg=name, polling="raf", timeout=ROW_TIMEOUT_S * 1000
                    )
                except PlaywrightTimeout as exc:
                    raise RuntimeError(
                        f"the queue row of {name!r} did not appear within {ROW_TIMEOUT_S} s: "
                        f"{_queue_position(base_url, keys, int(r.json()['conversation']['id']))}"
                    ) from exc
                t_seen = time.perf_counter()
                seen_ms.append((t_seen - t0) * 1000)
                after_ingest_ms.append((t_seen - t_ingested) * 1000)
                ingest_ms.append((t_ingested - t0) * 1000)
                fetched = rows.since(t0, t_seen)
                fetches_per_sample.append(len(fetched))
                if fetched:
                    start, end = fetched[-1]  # the fetch that brought the row
                    signal_ms.append((start - t0) * 1000)
                    fetch_ms.append((end - start) * 1000)
                    swap_ms.append(max(0.0, t_seen - end) * 1000)
                # the next ingest at a random point of the stream's poll cycle
                page.wait_for_timeout(rng.uniform(0.2, 0.2 + poll_s) * 1000)
            context.close()
        finally:
            browser.close()
    result: dict[str, Any] = {
        "events_poll_s": poll_s,
        "samples": samples,
        "ingest_to_row_ms": stats(seen_ms),
        "ingest_answered_to_row_ms": stats(after_ingest_ms),
        "ingest_request_ms": stats(ingest_ms),
        "breakdown_ms": {
            "ingest_sent_to_rows_fetch": stats(signal_ms),
            "rows_fetch": stats(fetch_ms),
            "fetch_done_to_row_seen": stats(swap_ms),
        },
        "rows_fetches_per_sample": stats([float(n) for n in fetches_per_sample]),
    }
    s = result["ingest_to_row_ms"]
    log(
        f"  poll {poll_s} s: ingest -> row p50 {s.get('p50')} p95 {s.get('p95')} max {s.get('max')} ms; "
        f"rows fetch p50 {result['breakdown_ms']['rows_fetch'].get('p50')} ms, "
        f"{result['rows_fetches_per_sample'].get('mean')} fetches per sample"
    )
    return result


def _queue_position(base_url: str, keys: Keys, conversation_id: int) -> str:
    r = httpx.get(f"{base_url}/v1/queue", params={"limit": 1000}, headers=keys.bearer(keys.agent), timeout=60)
    ids = [it["conversation_id"] for it in r.json()["items"]]
    where = ids.index(conversation_id) if conversation_id in ids else None
    return f"conversation {conversation_id} is at queue position {where} (the console shows {QUEUE_LIMIT})"


# -- the whole bench -----------------------------------------------------------------------------------------


def _code_version() -> dict[str, Any]:
    """The commit measured and the service files changed on top of it (the tree may be mid-edit)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout.rstrip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "service")
    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "uncommitted_service_files": [line[3:] for line in changed.splitlines()],
    }


def _env(poll_s: float | None) -> dict[str, str]:
    env = {
        "REPLYDESK_SLA_FIRST_RESPONSE_MINUTES": json.dumps(SLA_MINUTES),
        "REPLYDESK_SLA_NEXT_RESPONSE_MINUTES": json.dumps(SLA_MINUTES),
    }
    if poll_s is not None:
        env["REPLYDESK_EVENTS_POLL_S"] = str(poll_s)
    return env


def run_console_bench(
    *,
    conversations: int = 500,
    thread: int = 50,
    requests: int = 30,
    warmup: int = 3,
    browser: int = 10,
    clients: int = 4,
    default_poll: bool = True,
    log: Log = print,
) -> dict[str, Any]:
    """Seed, time the pages, then the browser at a 0.25 s poll and (with `default_poll`) at the default."""
    if thread < 2:
        raise ValueError("the thread needs at least 2 messages (a customer message and a reply)")
    nonce = uuid.uuid4().hex[:6]
    server = Server.create(extra_env=_env(FAST_POLL_S))
    servers = [server]
    result: dict[str, Any] = {
        "benchmark": "console",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "code": _code_version(),
        "settings": {
            "events_poll_s": [FAST_POLL_S, DEFAULT_POLL_S] if default_poll else [FAST_POLL_S],
            "sla_minutes": SLA_MINUTES,
            "console_queue_limit": QUEUE_LIMIT,
            "server": "replydesk serve, 1 uvicorn worker, SQLite, no LLM (template drafts), 127.0.0.1",
            "timing": "client wall time per request on loopback, kept-alive connection, sequential",
        },
    }
    try:
        keys = _create_keys(server)
        startup_s = server.start()
        log(f"server up on {server.base_url} in {startup_s:.1f} s; seeding {conversations} conversations")
        t0 = time.perf_counter()
        latencies, urgency = asyncio.run(
            _seed_open(server.base_url, keys, conversations, clients=clients, nonce=nonce)
        )
        seed_s = time.perf_counter() - t0
        log(f"  {conversations} ingests in {seed_s:.1f} s ({clients} clients); urgency {urgency}")
        t0 = time.perf_counter()
        big = seed_thread(server.base_url, keys, thread, nonce=nonce)
        thread_s = time.perf_counter() - t0
        log(
            f"  thread of {big['messages']} messages in {thread_s:.1f} s "
            f"(conversation {big['conversation_id']})"
        )
        result["seed"] = {
            "conversations": conversations,
            "clients": clients,
            "seconds": round(seed_s, 1),
            "ingest_ms": stats(latencies),
            "urgency": urgency,
            "thread": {**big, "seconds": round(thread_s, 1)},
        }
        log(f"timing pages: {warmup} warm-up + {requests} requests each")
        timing = time_pages(
            server, keys.agent, page_targets(big["conversation_id"]), requests=requests, warmup=warmup
        )
        result.update(timing)
        result["requests"] = requests
        result["warmup"] = warmup
        for name, page in timing["pages"].items():
            w = page["wall_ms"]
            log(f"  {name:22} p50 {w['p50']:7.1f}  p95 {w['p95']:7.1f}  max {w['max']:7.1f} ms")
        result["browser"] = []
        if browser:
            log(f"browser: {browser} ingests -> queue row")
            result["browser"].append(
                browser_samples(
                    server.base_url, keys, samples=browser, poll_s=FAST_POLL_S, nonce=nonce, log=log
                )
            )
            result["server_peak_rss_mb"] = server.peak_rss_mb()
            if default_poll:
                server.stop()
                env = dict(server.env)
                env.pop("REPLYDESK_EVENTS_POLL_S")  # the default
                again = Server(root=server.root, port=free_port(), env=env)
                servers.append(again)
                again.start()
                result["browser"].append(
                    browser_samples(
                        again.base_url, keys, samples=browser, poll_s=DEFAULT_POLL_S, nonce=nonce, log=log
                    )
                )
        result.setdefault("server_peak_rss_mb", server.peak_rss_mb())  # of the first server (seeded, timed)
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        return result
    finally:
        for s in servers:
            s.stop()
        server.cleanup()
        for s in servers[1:]:
            s.log_path.unlink(missing_ok=True)


def table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    seed = result.get("seed", {})
    rows = [
        f"{seed.get('conversations')} open conversations, a {seed.get('thread', {}).get('messages')}-message "
        f"thread; {result.get('requests')} requests per page; client wall time on loopback",
        "",
        "| page | p50 ms | p95 ms | max ms | server CPU ms/request | bytes | vs API (p50 / p95) |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = result.get("console_over_api", {})
    for name, page in result.get("pages", {}).items():
        w = page["wall_ms"]
        api = COMPARED.get(name)
        vs = ratios.get(f"{name}/{api}", {}) if api else {}
        ratio = f"{vs.get('p50')}× / {vs.get('p95')}× `{api}`" if api else ""
        rows.append(
            f"| `{page['path']}` | {w['p50']} | {w['p95']} | {w['max']} | "
            f"{page['server_cpu_ms_per_request']} | {page['bytes']} | {ratio} |"
        )
    for b in result.get("browser", []):
        s, parts = b["ingest_to_row_ms"], b["breakdown_ms"]
        signal, fetch = parts["ingest_sent_to_rows_fetch"], parts["rows_fetch"]
        rows.append(
            f"| ingest → queue row in Chromium, poll {b['events_poll_s']} s ({b['samples']} samples) | "
            f"{s['p50']} | {s['p95']} | {s['max']} | | | p50 / p95: to the rows fetch {signal.get('p50')} / "
            f"{signal.get('p95')}, the fetch {fetch.get('p50')} / {fetch.get('p95')}; "
            f"{b['rows_fetches_per_sample'].get('mean')} fetches per sample |"
        )
    return "\n".join(rows)


def write(result: dict[str, Any], out: Path | None = None) -> Path:
    path = out or DEFAULT_OUT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path
