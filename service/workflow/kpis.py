"""Support KPIs over a time window, overall and per intent: response and resolution times, SLA met %, CSAT,
NPS and how agents use the suggestions.

The database does the counting: SLA waits, survey answers and decided suggestions come back as one row per
(intent, kind or decision) with their counts and sums (GROUP BY), so a request's Python work does not grow
with the window. Only the response and resolution times come back one value per conversation (their
percentiles need every value). Every read is a range on its own time column, through an index that holds
the columns the read needs (migration 0010), and an SLA wait's intent is looked up for the window's
conversations only (by primary key), never by hashing every conversation ever."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import Integer, String, and_, case, func, or_, select, text, type_coerce
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import DateTime

from service.db import Database
from service.db.models import Conversation, SlaCycle, Suggestion, Survey
from service.workflow.models import KpiGroup, KpiRead, Percentiles, SuggestionRates, SurveyKind

UNKNOWN = "unknown"
DECISIONS = ("approved", "edited", "rejected")


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


@dataclass
class _Acc:
    """What one group (overall, or one intent) counted in the window."""

    conversations: int = 0
    first_response: list[float] = field(default_factory=list)
    resolution: list[float] = field(default_factory=list)
    sla_cycles: int = 0
    sla_met: int = 0
    csat_n: int = 0
    csat_sum: int = 0
    csat_good: int = 0  # answers of 4 or 5
    nps_n: int = 0
    nps_promoters: int = 0  # 9 or 10
    nps_detractors: int = 0  # 0 to 6
    decisions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    edit_n: int = 0
    edit_sum: int = 0

    def group(self) -> KpiGroup:
        decided = sum(self.decisions[d] for d in DECISIONS)

        def rate(n: int) -> float | None:
            return round(n / decided, 4) if decided else None

        nps = None
        if self.nps_n:
            nps = round(100 * (self.nps_promoters - self.nps_detractors) / self.nps_n, 2)
        return KpiGroup(
            conversations=self.conversations,
            first_response=_percentiles(self.first_response),
            resolution=_percentiles(self.resolution),
            sla_cycles=self.sla_cycles,
            sla_met_pct=round(100 * self.sla_met / self.sla_cycles, 2) if self.sla_cycles else None,
            csat_responses=self.csat_n,
            csat_mean=round(self.csat_sum / self.csat_n, 3) if self.csat_n else None,
            csat_pct=round(100 * self.csat_good / self.csat_n, 2) if self.csat_n else None,
            nps_responses=self.nps_n,
            nps=nps,
            suggestions=SuggestionRates(
                decided=decided,
                approved=self.decisions["approved"],
                edited=self.decisions["edited"],
                rejected=self.decisions["rejected"],
                acceptance_rate=rate(self.decisions["approved"]),
                edit_rate=rate(self.decisions["edited"]),
                reject_rate=rate(self.decisions["rejected"]),
                mean_edit_distance=round(self.edit_sum / self.edit_n, 3) if self.edit_n else None,
            ),
        )


class _Groups:
    """The overall group and one per intent (a missing or empty intent counts as `unknown`); a group exists
    once something in the window counted for it."""

    def __init__(self) -> None:
        self.overall = _Acc()
        self.per_intent: dict[str, _Acc] = {}

    def of(self, intent: str | None) -> tuple[_Acc, _Acc]:
        key = intent or UNKNOWN
        acc = self.per_intent.get(key)
        if acc is None:
            acc = self.per_intent[key] = _Acc()
        return self.overall, acc


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """How many rows of the group meet the condition (0 when none: never NULL)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0, type_=Integer)


def _sum_when(condition: ColumnElement[bool], value: ColumnElement[int]) -> ColumnElement[int]:
    """The sum of `value` over the group's rows that meet the condition (0 when none)."""
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0, type_=Integer)


def _raw(column: QueryableAttribute[datetime | None]) -> ColumnElement[datetime]:
    """A time column as the driver gives it (aware on PostgreSQL, naive UTC on SQLite): the values are only
    subtracted from each other, so the per-value UTC conversion of `UTCDateTime` is skipped. (NULL stays
    None: the reads below check the columns that can be NULL.)"""
    return type_coerce(column, DateTime(timezone=True))


def compute_kpis(db: Database, start: datetime, end: datetime, now: datetime) -> KpiRead:
    """Each figure counts what happened in [start, end): conversations by first customer message, resolutions
    by resolve time, SLA waits by start (a wait still open counts once it is past due), surveys by answer
    time, suggestions by decision time (superseded ones are not decisions)."""
    groups = _Groups()
    with db.session() as s:
        conn = s.connection()
        if conn.dialect.name == "postgresql":
            # The SLA read looks up one intent per conversation of the window; the planner prices those
            # lookups above `jit_above_cost` and would spend 20-40 ms compiling a query of a few ms.
            conn.execute(text("SET LOCAL jit = off"))
        # conversations that started in the window, with their first response time
        for intent, first_at, responded_at in conn.execute(
            select(
                Conversation.intent,
                _raw(Conversation.first_customer_message_at),
                _raw(Conversation.first_response_at),
            ).where(
                Conversation.first_customer_message_at >= start, Conversation.first_customer_message_at < end
            )
        ).all():
            overall, acc = groups.of(intent)
            overall.conversations += 1
            acc.conversations += 1
            if responded_at is not None:
                delta = (responded_at - first_at).total_seconds()
                overall.first_response.append(delta)
                acc.first_response.append(delta)

        # conversations resolved in the window (however long ago they started)
        for intent, first_at, resolved_at in conn.execute(
            select(
                Conversation.intent,
                _raw(Conversation.first_customer_message_at),
                _raw(Conversation.resolved_at),
            ).where(
                Conversation.resolved_at >= start,
                Conversation.resolved_at < end,
                Conversation.first_customer_message_at.is_not(None),
            )
        ).all():
            delta = (resolved_at - first_at).total_seconds()
            overall, acc = groups.of(intent)
            overall.resolution.append(delta)
            acc.resolution.append(delta)

        # SLA waits: answered ones by their `met`, open ones once past due (late); counted per conversation
        # first, then each of those conversations' intent is read by primary key
        counted = or_(SlaCycle.responded_at.is_not(None), SlaCycle.due_at < now)
        per_conversation = (
            select(
                SlaCycle.conversation_id.label("conversation_id"),
                func.count().label("cycles"),
                _count(and_(SlaCycle.responded_at.is_not(None), SlaCycle.met.is_(True))).label("met"),
            )
            .where(SlaCycle.started_at >= start, SlaCycle.started_at < end, counted)
            .group_by(SlaCycle.conversation_id)
            .subquery("per_conversation")
        )
        intent_of = (
            select(Conversation.intent)
            .where(Conversation.id == per_conversation.c.conversation_id)
            .scalar_subquery()
        )
        with_intent = select(
            intent_of.label("intent"), per_conversation.c.cycles, per_conversation.c.met
        ).subquery("with_intent")
        for intent, cycles, met in conn.execute(
            select(
                with_intent.c.intent,
                func.sum(with_intent.c.cycles, type_=Integer),
                func.sum(with_intent.c.met, type_=Integer),
            ).group_by(with_intent.c.intent)
        ):
            for acc in groups.of(intent):
                acc.sla_cycles += int(cycles)
                acc.sla_met += int(met)

        # answered surveys: the intent the survey recorded, else its conversation's
        for survey_intent, conversation_intent, kind, n, total, good, promoters, detractors in conn.execute(
            select(
                Survey.intent,
                Conversation.intent,
                Survey.kind,
                func.count(),
                type_coerce(func.sum(Survey.score), Integer),
                _count(Survey.score >= 4),
                _count(Survey.score >= 9),
                _count(Survey.score <= 6),
            )
            .select_from(Survey)
            .outerjoin(Conversation, Conversation.id == Survey.conversation_id)
            .where(Survey.score.is_not(None), Survey.answered_at >= start, Survey.answered_at < end)
            .group_by(Survey.intent, Conversation.intent, Survey.kind)
        ):
            for acc in groups.of(survey_intent or conversation_intent):
                if kind == SurveyKind.csat.value:
                    acc.csat_n += int(n)
                    acc.csat_sum += int(total)
                    acc.csat_good += int(good)
                else:
                    acc.nps_n += int(n)
                    acc.nps_promoters += int(promoters)
                    acc.nps_detractors += int(detractors)

        # decided suggestions (superseded ones are not decisions), and the edit distance of edited ones
        edited = and_(Suggestion.decision == "edited", Suggestion.edit_distance.is_not(None))
        decision_ = type_coerce(Suggestion.decision, String)  # never NULL here (the WHERE)
        for intent, decision, n, edits, edit_sum in conn.execute(
            select(
                Suggestion.intent,
                decision_,
                func.count(),
                _count(edited),
                _sum_when(edited, type_coerce(Suggestion.edit_distance, Integer)),
            )
            .where(
                Suggestion.decision.is_not(None), Suggestion.decided_at >= start, Suggestion.decided_at < end
            )
            .group_by(Suggestion.intent, decision_)
        ):
            for acc in groups.of(intent):
                acc.decisions[decision] += int(n)
                acc.edit_n += int(edits)
                acc.edit_sum += int(edit_sum)

    return KpiRead(
        **{"from": start},
        to=end,
        overall=groups.overall.group(),
        per_intent={k: v.group() for k, v in sorted(groups.per_intent.items())},
    )
