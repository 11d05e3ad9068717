"""Body limit: what one oversized POST costs a real server, and what `/health` sees meanwhile.

Two `replydesk serve` subprocesses side by side in one run (bench.load.Server, 127.0.0.1): one with the
default limit (`REPLYDESK_MAX_BODY_BYTES` = 1 MiB), one whose limit is raised above the body (64 MiB), which
is how the service behaved before it had a limit. For each: `uploads` POSTs of a `size_mb` JSON message to
`/v1/messages` (an authenticated client, as in the issue), while a second thread samples `/health` every 50
ms. Reported: the POST's status and response time, and `/health` p50/p95/max during the uploads.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import numpy as np

from bench.load import Server

HEALTH_EVERY_S = 0.05


def _body(size_mb: int) -> bytes:
    head = (
        b'{"channel": "webchat", "conversation_external_id": "big-1", "customer": {"id": "c-big"}, '
        b'"sent_at": "2026-01-05T09:00:00Z", "text": "'
    )
    return head + b"a" * (size_mb * 1024 * 1024) + b'"}'


def _measure(server: Server, body: bytes, uploads: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}
    health: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                c.get("/health")
                health.append(time.perf_counter() - t0)
                stop.wait(HEALTH_EVERY_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    posts: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.base_url, timeout=120) as c:
        for _ in range(uploads):
            t0 = time.perf_counter()
            try:
                r = c.post("/v1/messages", content=body, headers=headers)
                status: int | str = r.status_code
            except httpx.TransportError as exc:  # the server may close the connection on a refused body
                status = type(exc).__name__
            posts.append({"status": status, "seconds": round(time.perf_counter() - t0, 3)})
    stop.set()
    sampler.join(timeout=30)
    ms = np.array(health) * 1000 if health else np.array([float("nan")])
    return {
        "posts": posts,
        "post_median_s": float(np.median([p["seconds"] for p in posts])),
        "health_samples": len(health),
        "health_p50_ms": round(float(np.percentile(ms, 50)), 1),
        "health_p95_ms": round(float(np.percentile(ms, 95)), 1),
        "health_max_ms": round(float(ms.max()), 1),
    }


def run_body_limit_bench(*, size_mb: int = 50, uploads: int = 3, log=print) -> dict[str, Any]:
    body = _body(size_mb)
    result: dict[str, Any] = {"body_bytes": len(body), "uploads": uploads}
    for name, limit in (("limit_1MiB", None), ("limit_64MiB", str(64 * 1024 * 1024))):
        server = Server.create(extra_env={"REPLYDESK_MAX_BODY_BYTES": limit} if limit else None)
        try:
            server.start()
            server.warm()
            result[name] = _measure(server, body, uploads)
            log(f"{name}: {result[name]}")
        finally:
            server.stop()
    small, big = result["limit_1MiB"], result["limit_64MiB"]
    result["post_time_ratio"] = round(big["post_median_s"] / max(small["post_median_s"], 1e-6), 1)
    result["health_max_ratio"] = round(big["health_max_ms"] / max(small["health_max_ms"], 1e-6), 1)
    return result
