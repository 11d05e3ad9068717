"""Crash recovery of the message pipeline: a message is stored (and acknowledged) before its pipeline runs, so
a process killed in between leaves it `pending` with no suggestions. The worker finds such messages once their
lease has run out (`pipeline_stale_s` after the last run began), claims them one at a time and re-runs them.

Several workers or replicas may do this at once: the candidate is read with `FOR UPDATE SKIP LOCKED` on
PostgreSQL (replicas skip each other's rows instead of queueing on them; SQLite has one writer anyway) and
claimed by the conditional UPDATE of `ingest.claim_run`, which only one caller wins. A message whose runs keep
dying (it took the process down `pipeline_max_attempts` times) is marked `failed` instead of being re-run for
ever; a helpdesk re-send may still retry it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update

from service.db.models import Message
from service.db.rows import changed
from service.workflow.context import WorkflowContext
from service.workflow.ingest import claim_run, run_pipeline, stranded
from service.workflow.models import PipelineStatus
from service.workflow.ports import MessagePipelinePort

log = logging.getLogger("replydesk.workflow")


@dataclass
class RecoveryCounts:
    rerun: int = 0
    gave_up: int = 0


def recover_next(ctx: WorkflowContext, pipeline: MessagePipelinePort) -> str | None:
    """Re-run (or give up on) the oldest stranded pipeline; `rerun`, `gave_up`, or None when none is left."""
    now = ctx.clock.now()
    with ctx.db.session() as s:
        message_id = s.scalars(
            select(Message.id)
            .where(stranded(now))
            .order_by(Message.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if message_id is None:
            return None
        if claim_run(ctx, s, message_id, now, retry_failed=False):
            outcome = "rerun"
        else:
            max_runs = ctx.settings.pipeline_max_attempts
            gave_up = changed(
                s,
                update(Message)
                .where(
                    Message.id == message_id,
                    stranded(now),
                    Message.pipeline_attempts >= max_runs,
                )
                .values(
                    pipeline_status=PipelineStatus.failed.value,
                    pipeline_lease_until=None,
                    pipeline_error=f"stranded: {max_runs} runs never finished (the process stopped "
                    "during each); re-send the message to try again",
                ),
            )
            if gave_up != 1:
                return None  # someone else took it between the read and the update: look again next pass
            outcome = "gave_up"
    ctx.metrics.pipeline_recoveries.labels(outcome).inc()
    if outcome == "gave_up":
        ctx.metrics.pipeline_failures.labels("stranded").inc()
        log.warning("stranded pipeline given up", extra={"message_id": message_id})
        return outcome
    log.info("re-running a stranded pipeline", extra={"message_id": message_id})
    run_pipeline(ctx, message_id, pipeline)
    return outcome


def recover_pipelines(
    ctx: WorkflowContext,
    pipeline: MessagePipelinePort,
    *,
    limit: int = 100,
    should_stop: Callable[[], bool] | None = None,
) -> RecoveryCounts:
    """One recovery pass: stranded pipelines one by one (each claimed just before it runs, so a long backlog
    never holds leases it is not working on), at most `limit` of them."""
    counts = RecoveryCounts()
    for _ in range(limit):
        if should_stop is not None and should_stop():
            break
        outcome = recover_next(ctx, pipeline)
        if outcome is None:
            break
        if outcome == "rerun":
            counts.rerun += 1
        else:
            counts.gave_up += 1
    return counts
