"""HTTP load against the real server: `replydesk serve` in a subprocess on 127.0.0.1, production settings, a
fresh data directory (its own SQLite file and index; only the exported ONNX model is shared, read-only, so
start-up does not re-export it).

Open-loop load: request i is scheduled at `start + i / rate` and picked up by one of `clients` concurrent
connections, so a slow server shows up as latency (and a growing backlog), not as a lower offered rate. Every
text is unique (a nonce and a random order number), so the embedding cache cannot serve repeated texts.
Bounded: at most `rate * seconds` requests, each with a timeout, and only to 127.0.0.1.
 After a `/v1/messages` run, every accepted message id and every returned suggestion id is looked up in the
server's database: `lost` counts those that are missing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from service.settings import REPO_ROOT

LOOPBACK = "127.0.0.1"
REQUEST_TIMEOUT_S = 10.0
START_TIMEOUT_S = 300.0

TEMPLATES = [
    ("Hi, where is my order {order}? It was due {day}.", "en-GB"),
    ("my parcel {order} still hasn't arrived, tracking says in transit since {day}", "en-US"),
    ("I want to return the {item} from order {order}, it doesn't fit", "en-GB"),
    ("I was charged twice for order {order}, please refund one of them", "en-US"),
    ("can I change the delivery address for {order}? moving on {day}", "en-GB"),
    ("Hola, mi pedido {order} no ha llegado y lo necesito el {day}", "es-MX"),
    ("Quiero devolver el {item} del pedido {order}", "es-ES"),
    ("Wo bleibt meine Bestellung {order}? Sie sollte am {day} kommen", "de-DE"),
    ("Bonjour, je voudrais annuler la commande {order}", "fr-FR"),
    ("Oi, quero rastrear meu pedido {order}, ainda não chegou", "pt-BR"),
    ("someone logged into my account and changed my email, order {order} was placed", "en-US"),
    ("do you have the {item} in stock in a larger size?", "en-GB"),
    ("can I book a repair appointment for my {item} on {day}?", "en-US"),
    ("the {item} arrived broken, order {order}", "en-GB"),
]
ITEMS = [
    "lamp",
    "kettle",
    "linen duvet cover",
    "USB-C charger",
    "rain jacket",
    "headphones",
    "desk chair",
    "mug",
]
DAYS = ["Monday", "Tuesday", "Friday", "the 12th", "yesterday", "tomorrow", "last week"]


def message(rng: random.Random, nonce: str, i: int) -> tuple[str, str]:
    template, locale = rng.choice(TEMPLATES)
    text = template.format(
        order=f"A{rng.randint(10000, 99999)}", day=rng.choice(DAYS), item=rng.choice(ITEMS)
    )
    return f"{text} (ref {nonce}-{i})", locale


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_for_health(
    process: subprocess.Popen, base_url: str, log_path: Path, *, require_ok: bool = True, poll_s: float = 0.25
) -> None:
    """Wait until `GET {base_url}/health` answers (200, with `require_ok`), at most START_TIMEOUT_S; raises
    if the server exits first (with the end of its log) or does not answer in time."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200 or not require_ok:
                return
        except httpx.TransportError:
            pass
        time.sleep(poll_s)
    raise RuntimeError("server did not answer /health in time")


def stop_process(process: subprocess.Popen | None) -> None:
    """Terminate a server still running (SIGTERM, 20 s grace, then SIGKILL)."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _check_loopback(url: str) -> None:
    host = httpx.URL(url).host
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"load tests only target loopback addresses, not {host}")


SHARED_CACHES = ("onnx", "embeddings", "intent")


class ServerPaths:
    """Where a `replydesk serve` on `port` with its data directory under `root / "data"` answers and keeps
    its database."""

    root: Path
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def db_file(self) -> Path:
        return self.root / "data" / "replydesk.db"


@dataclass
class Server(ServerPaths):
    """`replydesk serve` in a subprocess with its own data directory."""

    root: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen | None = None
    api_key: str = ""
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    @classmethod
    def create(cls, *, extra_env: dict[str, str] | None = None) -> Server:
        root = Path(tempfile.mkdtemp(prefix="replydesk-bench-"))
        cache = root / "data" / "cache"
        cache.mkdir(parents=True)
        # the checkout's model caches (exported ONNX models, embedding vectors, trained intent models) are
        # shared, as by the service's own processes: a server then starts in seconds instead of re-embedding
        # the articles and retraining the taxonomy (each is written atomically, so processes may share them)
        for name in SHARED_CACHES:
            shared = REPO_ROOT / "data" / "cache" / name
            shared.mkdir(parents=True, exist_ok=True)
            (cache / name).symlink_to(shared, target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("REPLYDESK_")}
        env.update(
            {
                "REPLYDESK_DATA_DIR": str(root / "data"),
                "REPLYDESK_LOG_LEVEL": "WARNING",
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
            }
        )
        env.update(extra_env or {})
        return cls(root=root, port=free_port(), env=env)

    def _cli(self, *args: str) -> str:
        exe = Path(sys.executable).with_name("replydesk")
        done = subprocess.run(
            [str(exe), *args],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"replydesk {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done.stdout

    def start(self) -> float:
        """Build the index, create a key, start uvicorn; returns seconds until /health answered."""
        self._cli("kb", "build")
        self.api_key = (
            self._cli(
                "keys", "create", "--role", "admin", "--name", "bench", "--rate-limit", "1000000/minute"
            )
            .strip()
            .splitlines()[-1]
        )
        exe = Path(sys.executable).with_name("replydesk")
        t0 = time.perf_counter()
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [str(exe), "serve", "--host", LOOPBACK, "--port", str(self.port)],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_health(self.process, self.base_url, self.log_path)
        return time.perf_counter() - t0

    def warm(self) -> None:
        """One triage and one ingest so lazy components are loaded before measuring."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        httpx.post(
            f"{self.base_url}/v1/triage",
            json={"text": "warm up where is my order"},
            headers=headers,
            timeout=120,
        ).raise_for_status()
        httpx.post(
            f"{self.base_url}/v1/messages",
            headers=headers,
            timeout=120,
            json={
                "channel": "webchat",
                "conversation_external_id": "warm-up",
                "customer": {"id": "warm"},
                "text": "warm up where is my order",
                "sent_at": "2026-01-05T09:00:00Z",
            },
        ).raise_for_status()

    def peak_rss_mb(self) -> float | None:
        """VmHWM (peak resident set) of the serving process, from /proc."""
        if self.process is None:
            return None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the serving process so far (from /proc; None elsewhere)."""
        if self.process is None:
            return None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        stop_process(self.process)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)


@dataclass
class Outcome:
    latency_ms: float
    status: int
    body: dict[str, Any] | None = None
    error: str | None = None


async def _run(
    base_url: str, api_key: str, endpoint: str, *, clients: int, rate: float, seconds: float, seed: int
) -> tuple[list[Outcome], float]:
    _check_loopback(base_url)
    total = max(1, int(rate * seconds))
    rng = random.Random(seed)
    nonce = uuid.uuid4().hex[:8]
    payloads = []
    for i in range(total):
        text, locale = message(rng, nonce, i)
        if endpoint == "/v1/messages":
            payloads.append(
                {
                    "channel": rng.choice(["whatsapp", "webchat", "sms"]),
                    "conversation_external_id": f"bench-{nonce}-{i % max(1, total // 3)}",
                    "customer": {"id": f"cust-{nonce}-{i % max(1, total // 3)}", "locale": locale},
                    "text": text,
                    "sent_at": "2026-01-05T09:00:00Z",
                    "idempotency_key": f"bench-{nonce}-{i}",
                }
            )
        else:
            payloads.append({"text": text, "locale": locale, "channel": "whatsapp"})
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    outcomes: list[Outcome] = []
    start = time.perf_counter() + 0.05
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=REQUEST_TIMEOUT_S,
        limits=limits,
    ) as client:

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                t0 = time.perf_counter()
                try:
                    r = await client.post(endpoint, json=payloads[i])
                    ms = (time.perf_counter() - t0) * 1000
                    body = r.json() if endpoint == "/v1/messages" and r.status_code < 300 else None
                    outcomes.append(Outcome(ms, r.status_code, body))
                except httpx.HTTPError as exc:
                    outcomes.append(Outcome((time.perf_counter() - t0) * 1000, 0, error=type(exc).__name__))

        await asyncio.gather(*(worker() for _ in range(clients)))
    return outcomes, time.perf_counter() - start


def lost_records(db_file: Path, outcomes: list[Outcome]) -> dict[str, int]:
    """Accepted messages and returned suggestions that are not in the database."""
    message_ids = {o.body["message"]["id"] for o in outcomes if o.body}
    suggestion_ids = {s["id"] for o in outcomes if o.body for s in o.body.get("suggestions", [])}
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as con:
        stored_m = {r[0] for r in con.execute("select id from messages")}
        stored_s = {r[0] for r in con.execute("select id from suggestions")}
    return {
        "accepted_messages": len(message_ids),
        "returned_suggestions": len(suggestion_ids),
        "lost_messages": len(message_ids - stored_m),
        "lost_suggestions": len(suggestion_ids - stored_s),
    }


def summarise(
    outcomes: list[Outcome], elapsed: float, *, endpoint: str, clients: int, rate: float, seconds: float
) -> dict[str, Any]:
    ok = [o for o in outcomes if 200 <= o.status < 300]
    lat = np.asarray([o.latency_ms for o in ok]) if ok else np.asarray([0.0])
    statuses: dict[str, int] = {}
    for o in outcomes:
        key = str(o.status) if o.status else (o.error or "error")
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "endpoint": endpoint,
        "clients": clients,
        "target_rate_per_s": rate,
        "seconds": seconds,
        "requests": len(outcomes),
        "ok": len(ok),
        "errors": len(outcomes) - len(ok),
        "statuses": statuses,
        "throughput_per_s": round(len(ok) / elapsed, 2) if elapsed else None,
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p95": round(float(np.percentile(lat, 95)), 1),
            "p99": round(float(np.percentile(lat, 99)), 1),
            "max": round(float(lat.max()), 1),
            "mean": round(float(lat.mean()), 1),
        },
    }


def run_load(
    server: Server, endpoint: str, *, clients: int, rate: float, seconds: float, seed: int = 0
) -> dict[str, Any]:
    cpu0 = server.cpu_seconds()
    outcomes, elapsed = asyncio.run(
        _run(
            server.base_url, server.api_key, endpoint, clients=clients, rate=rate, seconds=seconds, seed=seed
        )
    )
    cpu1 = server.cpu_seconds()
    result = summarise(outcomes, elapsed, endpoint=endpoint, clients=clients, rate=rate, seconds=seconds)
    if cpu0 is not None and cpu1 is not None and result["ok"]:
        # what one request costs the server in CPU, independent of other processes competing for the cores
        result["server_cpu_ms_per_request"] = round((cpu1 - cpu0) * 1000 / result["ok"], 1)
    if endpoint == "/v1/messages":
        result["durability"] = lost_records(server.db_file, outcomes)
    return result
