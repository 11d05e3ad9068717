"""Worker heartbeats: every process that runs the background loops (`replydesk serve` with workers enabled, or
`replydesk worker`) keeps one row of `worker_heartbeats` fresh, so any replica's `/health` can tell whether
anything is delivering webhooks, scanning SLAs and running pipelines at all.

A row whose `last_seen_at` is older than `worker_stale_s` counts as gone; rows gone for `PURGE_AFTER_STALE`
times that long are deleted by whichever process beats next (a SIGKILLed worker leaves its row behind). A
process that stops cleanly deletes its own row.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from service.clock import Clock
from service.db import Database
from service.db.models import WorkerHeartbeat

log = logging.getLogger("replydesk.worker")

PURGE_AFTER_STALE = 10
MIN_BEAT_S = 1.0
NO_WORKER = (
    "no background worker has reported within {stale:g} s: webhooks, SLA alerts and queued pipelines are not "
    "processed; start `replydesk worker` or set REPLYDESK_WORKERS_ENABLED=true"
)


def new_worker_id() -> str:
    """`host:pid:random`: unique even when two containers reuse a pid, readable in /health."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


def beat_interval(interval_s: float, stale_s: float) -> float:
    """About `worker_interval_s`, never under a second (a row write per tick would be wasteful) and always
    several beats per `worker_stale_s`, so one slow beat does not look like a dead worker."""
    return min(max(interval_s, MIN_BEAT_S), stale_s / 3)


class Heartbeat:
    """Keeps this process's row fresh from a thread of its own (`start` / `stop`); `beat` is one pass."""

    def __init__(self, db: Database, clock: Clock, *, kind: str, interval_s: float, stale_s: float) -> None:
        self.db = db
        self.clock = clock
        self.kind = kind
        self.stale_s = stale_s
        self.interval_s = beat_interval(interval_s, stale_s)
        self.worker_id = new_worker_id()
        self.started_at = clock.now()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """Mark this worker seen now (re-creating its row if a purge took it), and delete long-gone rows."""
        now = self.clock.now()
        with self.db.session() as s:
            seen = s.execute(
                update(WorkerHeartbeat).where(WorkerHeartbeat.id == self.worker_id).values(last_seen_at=now)
            )
            if seen.rowcount == 0:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
                # only this process writes this id, so there is no race between the update and the insert
                s.add(
                    WorkerHeartbeat(
                        id=self.worker_id,
                        kind=self.kind,
                        host=socket.gethostname()[:200],
                        pid=os.getpid(),
                        started_at=self.started_at,
                        last_seen_at=now,
                    )
                )
            s.execute(
                delete(WorkerHeartbeat).where(
                    WorkerHeartbeat.last_seen_at < now - timedelta(seconds=self.stale_s * PURGE_AFTER_STALE)
                )
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except SQLAlchemyError as exc:  # database briefly unavailable: /health shows it; beat again later
                log.warning("worker heartbeat failed", extra={"error": str(exc), "worker_id": self.worker_id})
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="replydesk-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and delete this worker's row (a clean exit is known at once, not after
        `worker_stale_s`)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        self._thread = None
        try:
            with self.db.session() as s:
                s.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == self.worker_id))
        except SQLAlchemyError as exc:  # the row goes stale and is purged later
            log.warning(
                "worker heartbeat not removed", extra={"error": str(exc), "worker_id": self.worker_id}
            )


def workers_health(db: Database, now: datetime, stale_s: float) -> dict[str, Any]:
    """The `workers` component of /health: ok while at least one worker has reported within `stale_s`,
    degraded (with what to do) otherwise."""
    since = now - timedelta(seconds=stale_s)
    try:
        with db.session() as s:
            rows = s.execute(
                select(WorkerHeartbeat.kind, func.count(), func.max(WorkerHeartbeat.last_seen_at))
                .where(WorkerHeartbeat.last_seen_at >= since)
                .group_by(WorkerHeartbeat.kind)
            ).all()
    except SQLAlchemyError as exc:
        return {
            "status": "unavailable",
            "detail": {"error": str(exc.orig) if hasattr(exc, "orig") else str(exc)},
        }
    by_kind = {kind: int(count) for kind, count, _ in rows}
    last = max((seen for _, _, seen in rows if seen is not None), default=None)
    detail: dict[str, Any] = {
        "alive": sum(by_kind.values()),
        "by_kind": by_kind,
        "stale_after_s": stale_s,
        "last_seen_at": last.isoformat() if last is not None else None,
    }
    if not by_kind:
        detail["message"] = NO_WORKER.format(stale=stale_s)
        return {"status": "degraded", "detail": detail}
    return {"status": "ok", "detail": detail}
