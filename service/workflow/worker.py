"""Background worker of the API process: delivers due webhooks and announces SLA risks/breaches."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import SQLAlchemyError

from service.workflow.service import Workflow

log = logging.getLogger("replydesk.worker")


class WorkflowWorker:
    def __init__(self, workflow: Workflow, interval_s: float) -> None:
        self.workflow = workflow
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        self.workflow.dispatcher.run_once()
        self.workflow.scan_sla()

    def _run(self) -> None:
        wake = self.workflow.events.new_work
        while not self._stop.is_set():
            try:
                self.tick()
            except SQLAlchemyError as exc:  # database briefly unavailable: keep the worker alive, retry later
                log.warning("worker tick failed", extra={"error": str(exc)})
            wake.wait(self.interval_s)
            wake.clear()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="replydesk-worker", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.workflow.events.new_work.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
