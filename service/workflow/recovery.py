"""The pipeline workers: queued pipelines and crash recovery, one mechanism.

A message is stored (and acknowledged) before its pipeline runs. A channel webhook leaves the run to the
workers: the message is stored `pending` with no lease and no run yet (`queued`), so it is due at once. A
process killed between storing a message and storing its suggestions leaves it `pending` too, with a lease
that runs out `pipeline_stale_s` after the run began (`stranded`). Workers find both with the same query,
claim them one at a time and run them: a queued message's first run, a stranded message's re-run.

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
    run: int = 0  # queued pipelines run for the first time
    rerun: int = 0  # stranded pipelines re-run
    gave_up: int = 0


def recover_next(ctx: WorkflowContext, pipeline: MessagePipelinePort) -> str | None:
    """Run the oldest due pipeline: `run` (a queued message's first run), `rerun` (a stranded one), `gave_up`,
    `lost` (another worker claimed it first), or None when nothing is due."""
    now = ctx.clock.now()
    with ctx.db.session() as s:
        row = s.execute(
            select(Message.id, Message.pipeline_attempts)
            .where(stranded(now))
            .order_by(Message.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            return None
        message_id, attempts = row
        if claim_run(ctx, s, message_id, now, retry_failed=False):
            outcome = "run" if attempts == 0 else "rerun"
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
                return "lost"  # someone else took it between the read and the update
            outcome = "gave_up"
    if outcome != "run":
        ctx.metrics.pipeline_recoveries.labels(outcome).inc()
    if outcome == "gave_up":
        ctx.metrics.pipeline_failures.labels("stranded").inc()
        log.warning("stranded pipeline given up", extra={"message_id": message_id})
        return outcome
    if outcome == "rerun":
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
    """One pass: due pipelines (queued or stranded) one by one (each claimed just before it runs, so a long
    backlog never holds leases it is not working on), at most `limit` of them."""
    counts = RecoveryCounts()
    for _ in range(limit):
        if should_stop is not None and should_stop():
            break
        outcome = recover_next(ctx, pipeline)
        if outcome is None:
            break
        if outcome == "run":
            counts.run += 1
        elif outcome == "rerun":
            counts.rerun += 1
        elif outcome == "gave_up":
            counts.gave_up += 1
    return counts
