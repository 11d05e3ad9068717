"""Background workers of the API process (or of `replydesk worker`): one loop delivers the outbox, woken as
soon as a row is committed or an attempt frees a slot (the deliveries themselves run on the dispatcher's pool,
`delivery_concurrency` at once). A row committed in this process wakes it through the event log's in-process
`new_work` event; on PostgreSQL a row committed by any process (an API replica, another worker) wakes it too,
through `NOTIFY replydesk_deliveries` (migration 0009) on a LISTEN connection of its own, so an approved reply
is claimed at once instead of after the poll interval (`worker_interval_s`, which still catches retries whose
backoff ran out, expired leases, and everything while the listener is reconnecting). One loop announces SLA
risks/breaches and applies channel statuses whose message id has since become known, every
`worker_interval_s`; `pipeline_workers` loops run queued pipelines (messages that channel webhooks
acknowledged first) and re-run stranded ones. Each loop is separate, so neither an SLA scan nor a backlog of
slow pipeline runs ever delays a delivery."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from service.db import Database
from service.db.listen import libpq_dsn, listen
from service.errors import ReplyDeskError
from service.workflow.service import Workflow

log = logging.getLogger("replydesk.worker")

DELIVERY_CHANNEL = "replydesk_deliveries"  # the NOTIFY channel of migration 0009's trigger


class DeliveryNotifications:
    """LISTEN replydesk_deliveries on `db` (PostgreSQL) and set `wake` on every notification: an outbox row
    committed by any process. Also sets `wake` on each (re)connection, which covers rows committed while it
    was not listening. Runs on its own thread until `stop` is set; a lost connection is retried with backoff
    (the delivery loop polls meanwhile, so nothing depends on it but latency)."""

    def __init__(self, db: Database, wake: threading.Event, stop: threading.Event) -> None:
        self.dsn = libpq_dsn(db)
        self.wake = wake
        self.stop = stop
        self.connected = threading.Event()  # listening now (tests wait for it)

    def run(self) -> None:
        listen(
            self.dsn,
            DELIVERY_CHANNEL,
            on_notify=self.wake.set,
            keep_going=lambda: not self.stop.is_set(),
            pause=self.stop.wait,
            connected=self.connected,
            log=log,
            unavailable="outbox notifications unavailable (%s); the delivery loop polls until the listener "
            "reconnects",
            warning="deliveries_listen_failed",
        )


class WorkflowWorker:
    def __init__(self, workflow: Workflow, interval_s: float) -> None:
        self.workflow = workflow
        self.interval_s = interval_s
        self.recovery_interval_s = workflow.settings.pipeline_recovery_interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0  # deliveries the last pump started
        self.notifications: DeliveryNotifications | None = None  # on PostgreSQL, while started

    def deliver(self) -> None:
        """Start as many due deliveries as there are free slots."""
        self._started = 0
        self.workflow.events.new_work.clear()  # before claiming: a row committed meanwhile wakes us again
        self._started = len(self.workflow.dispatcher.pump())

    def tick(self) -> None:
        self.workflow.scan_sla()
        self.workflow.apply_pending_receipts()

    def recover(self) -> None:
        """Run due pipelines until none is left (or the worker stops)."""
        while not self._stop.is_set():
            counts = self.workflow.recover_pipelines(should_stop=self._stop.is_set, limit=20)
            if counts.rerun or counts.gave_up:
                log.info(
                    "stranded pipelines recovered", extra={"rerun": counts.rerun, "gave_up": counts.gave_up}
                )
            if not (counts.run or counts.rerun or counts.gave_up):
                return

    def _loop(self, step: Callable[[], None], wait: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                step()
            except (SQLAlchemyError, ReplyDeskError) as exc:
                # database briefly unavailable, models not loadable yet: keep the worker alive, retry later
                log.warning("worker pass failed", extra={"error": str(exc), "step": step.__name__})
            wait()

    def _wait_for_deliveries(self) -> None:
        """Claim again at once after a pump that started something (more may be due); else sleep until a
        row is committed, an attempt finishes, or the interval passes (rows whose backoff ran out)."""
        if self._started == 0:
            self.workflow.events.new_work.wait(self.interval_s)

    def _wait_interval(self) -> None:
        self._stop.wait(self.interval_s)

    def _wait_for_pipelines(self) -> None:
        wake = self.workflow.pipeline_work
        wake.wait(self.recovery_interval_s)
        wake.clear()

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        loops = [
            ("replydesk-deliveries", self.deliver, self._wait_for_deliveries),
            ("replydesk-worker", self.tick, self._wait_interval),
        ]
        for n in range(self.workflow.settings.pipeline_workers):
            loops.append((f"replydesk-pipeline-{n}", self.recover, self._wait_for_pipelines))
        for name, step, wait in loops:
            thread = threading.Thread(target=self._loop, args=(step, wait), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.workflow.db.dialect == "postgresql":
            self.notifications = DeliveryNotifications(
                self.workflow.db, self.workflow.events.new_work, self._stop
            )
            thread = threading.Thread(
                target=self.notifications.run, name="replydesk-deliveries-listen", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.workflow.events.new_work.set()
        self.workflow.pipeline_work.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        self.notifications = None
        self.workflow.dispatcher.shutdown()  # the attempts already running finish first
