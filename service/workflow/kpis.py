"""Support KPIs over a time window, overall and per intent: response and resolution times, SLA met %, CSAT,
NPS and how agents use the suggestions."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import numpy as np
from sqlalchemy import select

from service.db import Database
from service.db.models import Conversation, SlaCycle, Suggestion, Survey
from service.workflow.models import KpiGroup, KpiRead, Percentiles, SuggestionRates, SurveyKind

UNKNOWN = "unknown"


def _percentiles(values: list[float]) -> Percentiles:
    if not values:
        return Percentiles(count=0)
    arr = np.asarray(values, dtype=float)
    return Percentiles(
        count=len(values),
        p50_s=round(float(np.percentile(arr, 50)), 3),
        p90_s=round(float(np.percentile(arr, 90)), 3),
        mean_s=round(float(arr.mean()), 3),
    )


class _Acc:
    def __init__(self) -> None:
        self.conversations: set[int] = set()
        self.first_response: list[float] = []
        self.resolution: list[float] = []
        self.sla: list[bool] = []
        self.csat: list[int] = []
        self.nps: list[int] = []
        self.decisions: dict[str, int] = defaultdict(int)
        self.edit_distances: list[int] = []

    def group(self) -> KpiGroup:
        decided = sum(self.decisions[d] for d in ("approved", "edited", "rejected"))

        def rate(n: int) -> float | None:
            return round(n / decided, 4) if decided else None

        nps = None
        if self.nps:
            promoters = sum(1 for x in self.nps if x >= 9)
            detractors = sum(1 for x in self.nps if x <= 6)
            nps = round(100 * (promoters - detractors) / len(self.nps), 2)
        return KpiGroup(
            conversations=len(self.conversations),
            first_response=_percentiles(self.first_response),
            resolution=_percentiles(self.resolution),
            sla_cycles=len(self.sla),
            sla_met_pct=round(100 * sum(self.sla) / len(self.sla), 2) if self.sla else None,
            csat_responses=len(self.csat),
            csat_mean=round(sum(self.csat) / len(self.csat), 3) if self.csat else None,
            csat_pct=round(100 * sum(1 for x in self.csat if x >= 4) / len(self.csat), 2)
            if self.csat
            else None,
            nps_responses=len(self.nps),
            nps=nps,
            suggestions=SuggestionRates(
                decided=decided,
                approved=self.decisions["approved"],
                edited=self.decisions["edited"],
                rejected=self.decisions["rejected"],
                acceptance_rate=rate(self.decisions["approved"]),
                edit_rate=rate(self.decisions["edited"]),
                reject_rate=rate(self.decisions["rejected"]),
                mean_edit_distance=round(sum(self.edit_distances) / len(self.edit_distances), 3)
                if self.edit_distances
                else None,
            ),
        )


def compute_kpis(db: Database, start: datetime, end: datetime, now: datetime) -> KpiRead:
    """Each figure counts what happened in [start, end): conversations by first customer message, resolutions
    by resolve time, SLA waits by start (a wait still open counts once it is past due), surveys by answer
    time, suggestions by decision time (superseded ones are not decisions)."""
    groups: dict[str, _Acc] = defaultdict(_Acc)

    def add(intent: str | None, fn) -> None:
        fn(groups["__overall__"])
        fn(groups[intent or UNKNOWN])

    # Each read is a range on its own time column (indexed), and takes the conversation's intent by a join:
    # never a read of every conversation.
    with db.session() as s:
        for c in s.execute(
            select(
                Conversation.id,
                Conversation.intent,
                Conversation.first_customer_message_at,
                Conversation.first_response_at,
                Conversation.resolved_at,
            ).where(
                (
                    (Conversation.first_customer_message_at >= start)
                    & (Conversation.first_customer_message_at < end)
                )
                | ((Conversation.resolved_at >= start) & (Conversation.resolved_at < end))
            )
        ):
            if c.first_customer_message_at and start <= c.first_customer_message_at < end:
                add(c.intent, lambda g, c=c: g.conversations.add(c.id))
                if c.first_response_at:
                    delta = (c.first_response_at - c.first_customer_message_at).total_seconds()
                    add(c.intent, lambda g, d=delta: g.first_response.append(d))
            if c.resolved_at and start <= c.resolved_at < end and c.first_customer_message_at:
                delta = (c.resolved_at - c.first_customer_message_at).total_seconds()
                add(c.intent, lambda g, d=delta: g.resolution.append(d))

        for cycle in s.execute(
            select(SlaCycle.responded_at, SlaCycle.met, SlaCycle.due_at, Conversation.intent)
            .outerjoin(Conversation, Conversation.id == SlaCycle.conversation_id)
            .where(SlaCycle.started_at >= start, SlaCycle.started_at < end)
        ):
            if cycle.responded_at is not None:
                met = bool(cycle.met)
            elif now > cycle.due_at:
                met = False
            else:
                continue  # still running and not late yet
            add(cycle.intent, lambda g, m=met: g.sla.append(m))

        for sv in s.execute(
            select(Survey.kind, Survey.score, Survey.intent, Conversation.intent.label("conversation_intent"))
            .outerjoin(Conversation, Conversation.id == Survey.conversation_id)
            .where(Survey.score.is_not(None), Survey.answered_at >= start, Survey.answered_at < end)
        ):
            target = "csat" if sv.kind == SurveyKind.csat.value else "nps"
            add(
                sv.intent or sv.conversation_intent,
                lambda g, t=target, v=sv.score: getattr(g, t).append(v),
            )

        for sug in s.execute(
            select(Suggestion.decision, Suggestion.edit_distance, Suggestion.intent).where(
                Suggestion.decision.is_not(None), Suggestion.decided_at >= start, Suggestion.decided_at < end
            )
        ):

            def rec(
                g: _Acc, decision: str | None = sug.decision, distance: int | None = sug.edit_distance
            ) -> None:
                if decision is not None:  # always: the query selects decided suggestions
                    g.decisions[decision] += 1
                if decision == "edited" and distance is not None:
                    g.edit_distances.append(distance)

            add(sug.intent, rec)

    overall = groups.pop("__overall__", _Acc()).group()
    return KpiRead(
        **{"from": start},
        to=end,
        overall=overall,
        per_intent={k: v.group() for k, v in sorted(groups.items())},
    )
