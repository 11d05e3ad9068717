"""Acknowledge fast (issue #14, item 7): how long a signed WhatsApp Cloud API webhook POST waits for its 200
with the pipeline run after the answer (`REPLYDESK_CHANNEL_PIPELINE=background`, the default) and inside the
request (`=inline`, the behaviour before), in one run, and how long the background workers then take until
every message of the POST has its triage and drafts.

Two `replydesk serve` subprocesses side by side (`bench.load.Server`: 127.0.0.1, each its own data directory
and SQLite file, no LLM so drafts come from templates), one per mode, with `REPLYDESK_WHATSAPP_APP_SECRET`
set and `REPLYDESK_EVENTS_POLL_S` at 0.2 s (otherwise production settings: 4 pipeline workers, 1 uvicorn
worker). An integration key signs in as `?api_key=` (Meta cannot send a header), an agent key reads
`GET /v1/events`.

Each POST is what Meta sends: `object: whatsapp_business_account`, one entry, one `changes` item per sender
with its `contacts` profile and one text message (distinct wamid, distinct sender, so every message opens its
own conversation), signed `X-Hub-Signature-256: sha256=HMAC-SHA256(app secret, raw body)`. The texts are short
support requests in English, Spanish, German, French and Portuguese (`bench.load.TEMPLATES`, each made unique
by an order number and a reference, so no embedding cache helps). `singles` rounds of 1 message, then
`batches` rounds of `batch_size`; each round posts to both servers, one after the other, the first server
alternating between rounds, so drift in the machine's load hits both modes alike. Bodies are built and signed
before the clock starts; a kept-alive connection per server; one request at a time.

Measured per mode and batch size: the client's wall time from sending the POST to its 200 (`ack_ms`). In
background mode the bench then waits until every message of the POST has its `suggestions.created` event
(`GET /v1/events`, agent key, read after the 200 so it costs the ack nothing) and takes `pipeline_drain_ms`
from sending the POST to the server's time stamp on the last of those events (same machine clock), so the
events poll interval does not count; inline, the pipelines are done when the 200 comes, so drain = ack.
Messages/s = messages / drain. The server's CPU time per message (`/proc`, user + system, from before the
POST to the end of the drain) shows whether answering first costs more work. A message whose pipeline failed
(no event) is looked up in the database and reported under `problems`; so is any non-200. At the end, every
wamid sent is looked up in each server's database (`lost`) with its pipeline status.

`python -m bench.channel_ack` or `replydesk bench channel-ack` (defaults: 30 singles, 10 batches of 100, both
modes; about 2–3 minutes on 2 cores) writes `bench/results/channel-ack-<UTC time>.json`; `make bench` runs it
as part of `python -m bench.run` (`--only channel-ack`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import write_result
from bench.console import _code_version, stats
from bench.load import Server, message

Log = Callable[[str], None]

MODES = ("background", "inline")
APP_SECRET = "bench-whatsapp-app-secret"
KEY_RATE_LIMIT = "1000000/minute"
EVENTS_POLL_S = 0.2
REQUEST_TIMEOUT_S = 120.0  # an inline 100-message POST on a loaded 2-core machine takes seconds
DRAIN_TIMEOUT_S = 180.0  # a batch whose pipelines are not all done by then is reported, not waited for
EVENTS_IDLE_S = 5.0  # one GET /v1/events returns after this long without a new event
# The business number the webhooks are addressed to (Meta's docs use these sample ids).
WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_PHONE_NUMBER = "15550783881"
# Senders: a mobile number of the country the text's language fits, made unique by a counter (E.164 without
# the +, as WhatsApp writes `wa_id`), and a profile name.
PHONE_PREFIX = {
    "en-GB": ("447911", 6),
    "en-US": ("1202555", 4),
    "es-MX": ("5255", 8),
    "es-ES": ("346", 8),
    "de-DE": ("49151", 8),
    "fr-FR": ("336", 8),
    "pt-BR": ("55119", 8),
}
NAMES = {
    "en-GB": ["Olivia Hughes", "Harry Patel", "Amelia Clarke"],
    "en-US": ["Jordan Lee", "Maria Gonzalez", "Tyler Brooks"],
    "es-MX": ["Ximena Ruiz", "Diego Hernández"],
    "es-ES": ["Lucía Martín", "Javier Romero"],
    "de-DE": ["Lena Schmidt", "Jonas Becker"],
    "fr-FR": ["Camille Dubois", "Louis Moreau"],
    "pt-BR": ["Ana Souza", "João Oliveira"],
}


@dataclass(frozen=True)
class Keys:
    integration: str
    agent: str


@dataclass(frozen=True)
class Webhook:
    body: bytes
    signature: str
    wamids: list[str]


class Payloads:
    """Signed WhatsApp Cloud API webhook bodies with unique texts, wamids and senders.

    Shape: Meta, "WhatsApp Cloud API › Webhooks" (every notification is `object` + `entry[].changes[]` with
    `field` and `value`) and "Webhooks › messages reference › Text messages" (`value.metadata`,
    `value.contacts[].profile.name` + `wa_id`, `value.messages[]` with `from`, `id` (the wamid), `timestamp`
    in Unix seconds as a string, `type: text`, `text.body`). Meta batches several notifications into one
    POST (payloads up to 3 MB); here one `changes` item per sender."""

    def __init__(self, secret: str, *, seed: int = 0) -> None:
        self.secret = secret
        self.rng = random.Random(seed)
        self.nonce = uuid.uuid4().hex[:8]
        self.count = 0

    def _one(self) -> tuple[dict[str, Any], str]:
        i = self.count
        self.count += 1
        text, locale = message(self.rng, self.nonce, i)
        prefix, digits = PHONE_PREFIX[locale]
        wa_id = f"{prefix}{i % 10**digits:0{digits}d}"
        wamid = "wamid." + base64.b64encode(f"{wa_id}.{self.nonce}.{i:08d}".encode()).decode()
        change = {
            "field": "messages",
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {
                    "display_phone_number": DISPLAY_PHONE_NUMBER,
                    "phone_number_id": PHONE_NUMBER_ID,
                },
                "contacts": [{"profile": {"name": self.rng.choice(NAMES[locale])}, "wa_id": wa_id}],
                "messages": [
                    {
                        "from": wa_id,
                        "id": wamid,
                        "timestamp": str(int(time.time())),
                        "type": "text",
                        "text": {"body": text},
                    }
                ],
            },
        }
        return change, wamid

    def webhook(self, n: int) -> Webhook:
        changes, wamids = zip(*(self._one() for _ in range(n)), strict=True)
        payload = {
            "object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": list(changes)}],
        }
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return Webhook(body, sign(self.secret, body), list(wamids))


def sign(secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256` as Meta computes it."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass
class Target:
    """One mode's server and what was measured against it."""

    mode: str
    server: Server
    keys: Keys
    payloads: Payloads
    client: httpx.Client | None = None
    last_event_id: int = 0
    ack_ms: dict[int, list[float]] = field(default_factory=dict)
    drain_ms: dict[int, list[float]] = field(default_factory=dict)
    cpu_s: dict[int, float] = field(default_factory=dict)
    sent: dict[int, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    wamids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def open(self) -> None:
        self.client = httpx.Client(base_url=self.server.base_url, timeout=REQUEST_TIMEOUT_S)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def _create_keys(server: Server) -> Keys:
    """An integration key (the webhook's `?api_key=`) and an agent key (reads the events), made before the
    server starts, as the other benches do."""

    def create(role: str) -> str:
        out = server._cli(
            "keys", "create", "--role", role, "--name", f"bench-{role}", "--rate-limit", KEY_RATE_LIMIT
        )
        return out.strip().splitlines()[-1]

    return Keys(integration=create("integration"), agent=create("agent"))


def _start(mode: str, log: Log) -> Target:
    server = Server.create(
        extra_env={
            "REPLYDESK_CHANNEL_PIPELINE": mode,
            "REPLYDESK_WHATSAPP_APP_SECRET": APP_SECRET,
            "REPLYDESK_EVENTS_POLL_S": str(EVENTS_POLL_S),
        }
    )
    try:
        keys = _create_keys(server)
        startup_s = server.start()
    except BaseException:
        server.stop()
        server.cleanup()
        raise
    log(f"  [{mode}] server up on {server.base_url} in {startup_s:.1f} s")
    return Target(mode=mode, server=server, keys=keys, payloads=Payloads(APP_SECRET, seed=len(mode)))


def _events(target: Target, wanted: int) -> list[dict[str, Any]]:
    """`suggestions.created` events after the last one read (at most `wanted`; returns early after
    EVENTS_IDLE_S without one)."""
    assert target.client is not None
    r = target.client.get(
        "/v1/events",
        params={
            "since": target.last_event_id,
            "types": "suggestions.created",
            "max_events": wanted,
            "max_wait_s": EVENTS_IDLE_S,
        },
        headers={"Authorization": f"Bearer {target.keys.agent}"},
    )
    r.raise_for_status()
    events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    if events:
        target.last_event_id = max(target.last_event_id, *(int(e["id"]) for e in events))
    return events


def _pipeline_rows(target: Target, message_ids: Sequence[int]) -> dict[int, tuple[str | None, str | None]]:
    """Pipeline status and error of these messages, read from the server's SQLite file (read-only)."""
    marks = ",".join("?" * len(message_ids))
    with sqlite3.connect(f"file:{target.server.db_file}?mode=ro", uri=True) as con:
        rows = con.execute(
            f"select id, pipeline_status, pipeline_error from messages where id in ({marks})",
            list(message_ids),
        ).fetchall()
    return {int(r[0]): (r[1], r[2]) for r in rows}


def _drain(target: Target, message_ids: list[int], sent_epoch: float) -> float | None:
    """Wait until every message has its `suggestions.created` event; ms from sending the POST to the last
    event's server time. None (and `problems`) when a pipeline failed or did not finish in time."""
    pending = set(message_ids)
    failed: set[int] = set()
    last_at: datetime | None = None
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        events = _events(target, len(pending))
        for ev in events:
            if ev.get("message_id") in pending:
                pending.discard(ev["message_id"])
                at = datetime.fromisoformat(ev["created_at"])
                last_at = at if last_at is None or at > last_at else last_at
        if pending and len(events) < len(pending):  # the stream went idle: look for failed pipelines
            for mid, (status, error) in _pipeline_rows(target, sorted(pending)).items():
                if status in ("failed", "skipped"):
                    pending.discard(mid)
                    failed.add(mid)
                    target.problems.append(f"message {mid}: pipeline {status}: {error}")
    if pending:
        rows = _pipeline_rows(target, sorted(pending))
        target.problems.append(
            f"{len(pending)} pipelines not done {DRAIN_TIMEOUT_S:.0f} s after the POST: "
            + ", ".join(f"{mid} ({rows.get(mid, ('missing', None))[0]})" for mid in sorted(pending)[:10])
        )
        return None
    if failed or last_at is None:
        return None
    return (last_at.timestamp() - sent_epoch) * 1000


def post_once(target: Target, n: int) -> None:
    """One signed POST of `n` messages; the ack time and, in background mode, the drain."""
    assert target.client is not None
    hook = target.payloads.webhook(n)
    target.wamids += hook.wamids
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": hook.signature}
    cpu0 = target.server.cpu_seconds()
    sent_epoch = time.time()
    t0 = time.perf_counter()
    try:
        r = target.client.post(
            "/v1/channels/whatsapp/webhook",
            params={"api_key": target.keys.integration},
            content=hook.body,
            headers=headers,
        )
    except httpx.HTTPError as exc:
        target.statuses[type(exc).__name__] = target.statuses.get(type(exc).__name__, 0) + 1
        target.problems.append(f"POST of {n}: {type(exc).__name__}: {exc}")
        return
    ms = (time.perf_counter() - t0) * 1000
    target.statuses[str(r.status_code)] = target.statuses.get(str(r.status_code), 0) + 1
    if r.status_code != 200:
        target.problems.append(f"POST of {n}: {r.status_code} {r.text[:300]}")
        return
    body = r.json()
    target.ack_ms.setdefault(n, []).append(ms)
    target.sent[n] = target.sent.get(n, 0) + n
    if body.get("ingested") != n or body.get("duplicates"):
        target.problems.append(
            f"POST of {n}: ingested {body.get('ingested')}, duplicates {body.get('duplicates')}"
        )
    if target.mode == "background":
        ids = [q["message_id"] for q in body.get("queued", [])]
        drain = _drain(target, ids, sent_epoch)
    else:
        not_done = [x["message"]["id"] for x in body.get("results", []) if x["pipeline"]["status"] != "done"]
        for mid in not_done:
            target.problems.append(f"message {mid}: inline pipeline not done")
        drain = None if not_done else ms
    if drain is not None:
        target.drain_ms.setdefault(n, []).append(drain)
    cpu1 = target.server.cpu_seconds()
    if cpu0 is not None and cpu1 is not None:
        target.cpu_s[n] = target.cpu_s.get(n, 0.0) + cpu1 - cpu0


def durability(target: Target) -> dict[str, Any]:
    """Every wamid sent, looked up in the server's database, with its pipeline status."""
    with sqlite3.connect(f"file:{target.server.db_file}?mode=ro", uri=True) as con:
        rows = con.execute(
            "select channel_message_id, pipeline_status from messages where channel = 'whatsapp' "
            "and direction = 'inbound'"
        ).fetchall()
    stored = {r[0]: r[1] for r in rows}
    statuses: dict[str, int] = {}
    for wamid in target.wamids:
        status = stored.get(wamid, "lost")
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "sent": len(target.wamids),
        "stored": sum(1 for w in target.wamids if w in stored),
        "lost": sum(1 for w in target.wamids if w not in stored),
        "pipeline_status": statuses,
    }


def _summary(target: Target) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for n, acks in target.ack_ms.items():
        drains = target.drain_ms.get(n, [])
        drain = stats(drains)
        entry: dict[str, Any] = {
            "posts": len(acks),
            "messages": target.sent.get(n, 0),
            "ack_ms": stats(acks),
            "pipeline_drain_ms": drain,
        }
        if drains:
            entry["messages_per_s"] = {
                "p50": round(n / (drain["p50"] / 1000), 1),
                "overall": round(n * len(drains) / (sum(drains) / 1000), 1),
            }
        if n in target.cpu_s and target.sent.get(n):
            entry["server_cpu_ms_per_message"] = round(target.cpu_s[n] * 1000 / target.sent[n], 1)
        sizes[str(n)] = entry
    return {
        "mode": target.mode,
        "by_messages_per_post": sizes,
        "statuses": target.statuses,
        "durability": durability(target),
        "problems": target.problems,
        "server_peak_rss_mb": target.server.peak_rss_mb(),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 1) if a is not None and b else None


def _warm(target: Target) -> None:
    """The server's lazy parts (models, classifier) and the webhook route, before anything is timed."""
    target.server.warm()
    post_once(target, 2)
    target.ack_ms.clear()
    target.drain_ms.clear()
    target.cpu_s.clear()
    target.sent.clear()


def run_channel_ack_bench(
    *,
    singles: int = 30,
    batches: int = 10,
    batch_size: int = 100,
    modes: Sequence[str] = MODES,
    log: Log = print,
) -> dict[str, Any]:
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        raise ValueError(f"modes must be among {MODES}, got {list(modes)}")
    result: dict[str, Any] = {
        "benchmark": "channel-ack",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "code": _code_version(),
        "singles": singles,
        "batches": batches,
        "batch_size": batch_size,
        "settings": {
            "server": "replydesk serve, 1 uvicorn worker, SQLite, no LLM (template drafts), 127.0.0.1, "
            "REPLYDESK_PIPELINE_WORKERS default (4)",
            "events_poll_s": EVENTS_POLL_S,
            "timing": "client wall time from sending the POST to its 200, kept-alive connection, one request "
            "at a time; drain: from sending the POST to the server's time on the last suggestions.created",
        },
    }
    t_start = time.perf_counter()
    log(f"starting {len(modes)} servers: {', '.join(modes)}")
    with ThreadPoolExecutor(max_workers=len(modes)) as pool:
        futures = [pool.submit(_start, mode, log) for mode in modes]
    targets: list[Target] = []
    errors: list[BaseException] = []
    for f in futures:
        exc = f.exception()
        if exc is None:
            targets.append(f.result())
        else:
            errors.append(exc)
    try:
        if errors:
            raise errors[0]
        for t in targets:
            t.open()
            _warm(t)
        result["load_average_after_start"] = [round(x, 2) for x in os.getloadavg()]
        for n, rounds in ((1, singles), (batch_size, batches)):
            if rounds <= 0:
                continue
            log(f"{rounds} rounds of {n} message(s) per POST")
            for r in range(rounds):
                for t in targets if r % 2 == 0 else reversed(targets):
                    post_once(t, n)
            for t in targets:
                acks, drains = stats(t.ack_ms.get(n, [])), stats(t.drain_ms.get(n, []))
                log(
                    f"  [{t.mode}] {n}/POST: ack p50 {acks.get('p50')} p95 {acks.get('p95')} max "
                    f"{acks.get('max')} ms; drain p50 {drains.get('p50')} p95 {drains.get('p95')} ms"
                )
        result["modes"] = {t.mode: _summary(t) for t in targets}
        bg, inline = result["modes"].get("background"), result["modes"].get("inline")
        if bg and inline:
            ratios: dict[str, Any] = {}
            for n in bg["by_messages_per_post"]:
                b, i = bg["by_messages_per_post"][n], inline["by_messages_per_post"].get(n)
                if not i:
                    continue
                ratios[n] = {
                    f"ack_{stat}": _ratio(i["ack_ms"].get(stat), b["ack_ms"].get(stat))
                    for stat in ("p50", "p95", "max")
                } | {
                    "drain_p50": _ratio(i["pipeline_drain_ms"].get("p50"), b["pipeline_drain_ms"].get("p50")),
                    "server_cpu_per_message": _ratio(
                        i.get("server_cpu_ms_per_message"), b.get("server_cpu_ms_per_message")
                    ),
                }
            result["inline_over_background"] = ratios
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        result["seconds"] = round(time.perf_counter() - t_start, 1)
        for t in targets:
            for p in t.problems:
                log(f"  [{t.mode}] problem: {p}")
        return result
    finally:
        for t in targets:
            t.close()
            t.server.stop()
            t.server.cleanup()


def table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    rows = [
        f"{result.get('singles')} POSTs of 1 message and {result.get('batches')} of "
        f"{result.get('batch_size')} per mode; {result.get('cpus')} CPUs, load average "
        f"{result.get('load_average_at_start')} at start",
        "",
        "| mode | messages / POST | ack p50 / p95 / max ms | pipelines done p50 / p95 / max ms | messages/s "
        "| server CPU ms / message | errors, lost |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, m in result.get("modes", {}).items():
        bad = sum(v for k, v in m["statuses"].items() if k != "200")
        for n, e in m["by_messages_per_post"].items():
            a, d = e["ack_ms"], e["pipeline_drain_ms"]
            rows.append(
                f"| {mode} | {n} | {a.get('p50')} / {a.get('p95')} / {a.get('max')} | {d.get('p50')} / "
                f"{d.get('p95')} / {d.get('max')} | {e.get('messages_per_s', {}).get('overall')} | "
                f"{e.get('server_cpu_ms_per_message')} | {bad}, {m['durability']['lost']} of "
                f"{m['durability']['sent']} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.channel_ack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--singles", type=int, default=30, help="POSTs of 1 message per mode.")
    parser.add_argument("--batches", type=int, default=10, help="POSTs of --batch-size messages per mode.")
    parser.add_argument("--batch-size", type=int, default=100, help="Messages in a batch POST.")
    parser.add_argument(
        "--mode", action="append", choices=MODES, help="Run only these modes (default: both)."
    )
    parser.add_argument(
        "--out", default=None, help="JSON output (default bench/results/channel-ack-<time>.json)."
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = run_channel_ack_bench(
        singles=args.singles, batches=args.batches, batch_size=args.batch_size, modes=args.mode or MODES
    )
    path = write_result(result, Path(args.out) if args.out else None, "channel-ack")
    print(table(result))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
