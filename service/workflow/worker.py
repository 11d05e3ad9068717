"""Background worker of the API process: delivers due webhooks and announces SLA risks/breaches (one loop),
and re-runs stranded pipelines at start and every `pipeline_recovery_interval_s` (a loop of its own, so a
backlog of slow pipeline runs never delays webhook delivery)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from service.errors import ReplyDeskError
from service.workflow.service import Workflow

log = logging.getLogger("replydesk.worker")


class WorkflowWorker:
    def __init__(self, workflow: Workflow, interval_s: float) -> None:
        self.workflow = workflow
        self.interval_s = interval_s
        self.recovery_interval_s = workflow.settings.pipeline_recovery_interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def tick(self) -> None:
        self.workflow.dispatcher.run_once()
        self.workflow.scan_sla()

    def recover(self) -> None:
        counts = self.workflow.recover_pipelines(should_stop=self._stop.is_set)
        if counts.rerun or counts.gave_up:
            log.info("stranded pipelines recovered", extra={"rerun": counts.rerun, "gave_up": counts.gave_up})

    def _loop(self, step: Callable[[], None], wait: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                step()
            except (SQLAlchemyError, ReplyDeskError) as exc:
                # database briefly unavailable, models not loadable yet: keep the worker alive, retry later
                log.warning("worker pass failed", extra={"error": str(exc), "step": step.__name__})
            wait()

    def _wait_for_work(self) -> None:
        wake = self.workflow.events.new_work
        wake.wait(self.interval_s)
        wake.clear()

    def _wait_for_recovery(self) -> None:
        self._stop.wait(self.recovery_interval_s)

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        for name, step, wait in (
            ("replydesk-worker", self.tick, self._wait_for_work),
            ("replydesk-recovery", self.recover, self._wait_for_recovery),
        ):
            thread = threading.Thread(target=self._loop, args=(step, wait), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.workflow.events.new_work.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
