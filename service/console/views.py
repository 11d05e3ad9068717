"""What the console's templates show, derived from the workflow's reads: status ticks, SLA labels,
draft cards and the keyboard neighbours of a conversation. Pure functions, so they are tested without a
browser."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.workflow.models import (
    AnalysisRead,
    ConversationDetail,
    Direction,
    MessageRead,
    MessageStatus,
    QueueItem,
    SlaState,
    SuggestionRead,
    SuggestionStatus,
)

# queued → sent → delivered → read; failed carries its reason. Symbols are decoration: the label is read out.
TICKS: dict[MessageStatus, tuple[str, str]] = {
    MessageStatus.queued: ("🕓", "Queued"),
    MessageStatus.sent: ("✓", "Sent"),
    MessageStatus.delivered: ("✓✓", "Delivered"),
    MessageStatus.read: ("✓✓", "Read"),
    MessageStatus.failed: ("⚠", "Failed"),
    MessageStatus.received: ("", "Received"),
}

SLA_LABELS = {SlaState.ok: "On time", SlaState.at_risk: "At risk", SlaState.breached: "Breached"}


@dataclass(frozen=True)
class Tick:
    symbol: str
    label: str
    status: str
    detail: str | None = None


def tick(msg: MessageRead) -> Tick:
    symbol, label = TICKS[msg.status]
    detail = None
    if msg.status is MessageStatus.failed:
        detail = msg.error or "the channel gave no reason"
    return Tick(symbol=symbol, label=label, status=msg.status.value, detail=detail)


def remaining_text(due_at: datetime | None, now: datetime) -> str:
    """'4 min left' / 'overdue 2 min' — what the page shows before the script starts its countdown."""
    if due_at is None:
        return "no wait"
    seconds = int((due_at - now).total_seconds())
    minutes, secs = divmod(abs(seconds), 60)
    span = f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{span} left" if seconds >= 0 else f"overdue {span}"


@dataclass(frozen=True)
class DraftCard:
    suggestion: SuggestionRead
    index: int  # 1-based, the key that picks it
    blocking: bool  # a `block` tone finding in the draft itself


@dataclass
class ConversationPage:
    detail: ConversationDetail
    analysis: AnalysisRead | None
    drafts: list[DraftCard]
    decided: list[SuggestionRead]
    previous_id: int | None
    next_id: int | None
    cited: set[str] = field(default_factory=set)


def draft_cards(suggestions: list[SuggestionRead]) -> tuple[list[DraftCard], list[SuggestionRead]]:
    """The pending drafts of the newest message that has any (best first, at most 3), and the decided ones
    (newest first)."""
    pending = [s for s in suggestions if s.status is SuggestionStatus.pending]
    newest = max((s.message_id for s in pending), default=None)
    current = sorted((s for s in pending if s.message_id == newest), key=lambda s: s.rank)[:3]
    cards = [
        DraftCard(
            suggestion=s,
            index=i,
            blocking=any(f.get("severity") == "block" for f in s.draft_tone_findings),
        )
        for i, s in enumerate(current, start=1)
    ]
    decided = sorted(
        (s for s in suggestions if s.status not in (SuggestionStatus.pending, SuggestionStatus.superseded)),
        key=lambda s: s.decided_at or s.created_at,
        reverse=True,
    )
    return cards, decided


def neighbours(queue_ids: list[int], current: int) -> tuple[int | None, int | None]:
    """Previous and next conversation in queue order (j/k); the first of the queue when this one is not
    in it (resolved, filtered out)."""
    if current not in queue_ids:
        return None, queue_ids[0] if queue_ids else None
    i = queue_ids.index(current)
    return (queue_ids[i - 1] if i > 0 else None), (queue_ids[i + 1] if i + 1 < len(queue_ids) else None)


def conversation_page(
    detail: ConversationDetail, analysis: AnalysisRead | None, queue_ids: list[int]
) -> ConversationPage:
    drafts, decided = draft_cards(detail.suggestions)
    previous_id, next_id = neighbours(queue_ids, detail.id)
    cited = {a for card in drafts for a in card.suggestion.cited_article_ids}
    return ConversationPage(
        detail=detail,
        analysis=analysis,
        drafts=drafts,
        decided=decided,
        previous_id=previous_id,
        next_id=next_id,
        cited=cited,
    )


def last_inbound(detail: ConversationDetail) -> MessageRead | None:
    inbound = [m for m in detail.messages if m.direction is Direction.inbound]
    return inbound[-1] if inbound else None


def queue_row_state(item: QueueItem) -> str:
    return SLA_LABELS[item.state]


def finding_list(findings: list[dict[str, Any]] | list[Any]) -> list[dict[str, Any]]:
    """Tone findings as plain dicts, the most severe first."""
    order = {"block": 0, "warn": 1, "info": 2}
    as_dicts = [f if isinstance(f, dict) else f.model_dump(mode="json") for f in findings]
    return sorted(as_dicts, key=lambda f: order.get(str(f.get("severity")), 3))
