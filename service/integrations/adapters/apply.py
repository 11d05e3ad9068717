"""One place that stores what a channel webhook carried (`ParsedWebhook`, from any platform's parser), in
an order that keeps every item: customer messages first (stored, their pipelines queued or run), then replies
sent elsewhere, statuses, watermarks and the helpdesk's status changes; every skipped event is counted and
logged.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from service.auth.models import Principal
from service.integrations.adapters.parsed import ParsedWebhook
from service.workflow.models import IngestRead, QueuedRead, StatusReceipt
from service.workflow.ports import MessagePipelinePort
from service.workflow.service import Workflow


class AdapterRead(BaseModel):
    """What a channel webhook POST did. With `REPLYDESK_CHANNEL_PIPELINE=background` (the default) messages
    are stored and acknowledged at once; their triage and suggestions follow as `suggestions.created`."""

    ingested: int = Field(description="Customer messages in the POST (duplicates included).")
    duplicates: int = Field(0, description="Messages already stored before (same channel message id).")
    receipts: int = Field(0, description="Statuses applied to messages ReplyDesk sent.")
    receipts_pending: int = Field(
        0, description="Statuses for a message id not known yet: kept and applied when the id arrives."
    )
    receipts_refused: int = Field(0, description="Statuses that repeat or would move a status backwards.")
    replies: int = Field(0, description="Replies sent outside ReplyDesk, recorded as the human's answer.")
    status_changes: int = Field(0, description="Conversations resolved or reopened by the helpdesk.")
    skipped: int = Field(0, description="Events ReplyDesk does not act on (counted in /metrics).")
    skipped_types: list[str] = Field(default_factory=list, description="Their types, in order.")
    queued: list[QueuedRead] = Field(
        default_factory=list, description="Stored messages whose pipeline the workers run (background)."
    )
    results: list[IngestRead] = Field(
        default_factory=list, description="Stored messages with triage and suggestions (inline)."
    )


def apply(
    workflow: Workflow,
    parsed: ParsedWebhook,
    principal: Principal,
    pipeline: MessagePipelinePort | None,
) -> AdapterRead:
    """Store everything `parsed` holds. `pipeline` None: queue the messages' pipelines for the workers
    (acknowledge first); else run them here (`inline`)."""
    out = AdapterRead(ingested=len(parsed.messages))
    if pipeline is None:
        out.queued = workflow.enqueue_many(parsed.messages)  # one transaction for the whole batch
        out.duplicates = sum(q.duplicate for q in out.queued)
    else:
        for msg in parsed.messages:
            result = workflow.ingest(msg, principal, pipeline)
            out.duplicates += int(result.duplicate)
            out.results.append(result)
    for reply in parsed.replies:
        outcome = workflow.record_external_reply(reply)
        if outcome == "recorded":
            out.replies += 1
        elif outcome == "unknown_conversation":
            _skip(
                workflow, out, f"{parsed.channel}.reply_unknown_conversation", "a thread ReplyDesk never saw"
            )
    for r in parsed.receipts:
        receipt = StatusReceipt(
            status=r.status,
            at=r.at,
            channel_message_id=r.channel_message_id,
            error=r.error,
            error_code=r.error_code,
        )
        outcome = workflow.apply_channel_receipt(parsed.channel, receipt)
        if outcome == "applied":
            out.receipts += 1
        elif outcome == "pending":
            out.receipts_pending += 1
        else:
            out.receipts_refused += 1
    for w in parsed.watermarks:
        out.receipts += workflow.apply_watermark(parsed.channel, w.conversation_external_id, w.at, w.status)
    for change in parsed.status_changes:
        outcome = workflow.external_status(
            None, change.conversation_external_id, change.status, principal, change.by
        )
        if outcome in ("resolved", "reopened"):
            out.status_changes += 1
    for skipped in parsed.skipped:
        _skip(workflow, out, skipped.type, skipped.reason)
    return out


def _skip(workflow: Workflow, out: AdapterRead, type_: str, reason: str) -> None:
    workflow.channel_event_skipped(type_, reason)
    out.skipped += 1
    out.skipped_types.append(type_)
