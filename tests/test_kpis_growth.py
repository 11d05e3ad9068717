"""KPIs counted by the database (issue #16, item 5): `compute_kpis` groups SLA waits, survey answers and
decisions in SQL and reads response times per conversation, and its figures are exactly the ones the
definitions give when every row of the window is counted one by one in Python, on SQLite and PostgreSQL,
for windows from an hour to the whole history (open waits not yet due, waits past due, empty intents,
surveys that name their own intent).

The history is the growth benchmark's (`bench.growth`: 300 conversations, about a day and a half), inserted
through the ORM's tables so both databases get the same rows."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import JSON, select, update

from bench.growth import COLUMNS, TABLE_ORDER, Ids, Pools, Rows, SeedPlan, _conversation
from service.db import Base, Database
from service.db.models import Conversation, SlaCycle, Suggestion, Survey
from service.workflow.kpis import compute_kpis

CONVERSATIONS = 300


def _seed(db: Database, now: datetime) -> None:
    """The benchmark's conversations, messages, drafts, SLA waits and surveys (its JSON texts as values)."""
    rng = random.Random(16)
    pools, ids, rows = Pools(rng), Ids(), Rows()
    plan = SeedPlan(conversations=CONVERSATIONS)
    for conv_id in range(1, CONVERSATIONS + 1):
        _conversation(rng, pools, ids, rows, plan, conv_id, now)
    with db.engine.begin() as conn:
        for name in TABLE_ORDER:
            table = Base.metadata.tables[name]
            json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
            conn.execute(
                table.insert(),
                [
                    {
                        k: json.loads(v) if k in json_columns and isinstance(v, str) else v
                        for k, v in zip(COLUMNS[name], row, strict=True)
                    }
                    for row in rows.tables[name]
                ],
            )
        # what the service also writes: an empty intent, and a survey naming an intent of its own
        conn.execute(update(Conversation).where(Conversation.id % 17 == 0).values(intent=""))
        conn.execute(update(Survey).where(Survey.id % 3 == 0).values(intent="survey_intent"))


def _by_hand(db: Database, start: datetime, end: datetime, now: datetime) -> dict[str, Any]:
    """The definitions, row by row: conversations by first customer message, resolutions by resolve time,
    SLA waits by start (an open one once past due, as missed), answered surveys by answer time (their own
    intent, else the conversation's), decided drafts by decision time; a missing or empty intent is
    `unknown`."""
    groups: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "conv": 0,
            "frt": [],
            "res": [],
            "sla": [],
            "csat": [],
            "nps": [],
            "dec": defaultdict(int),
            "dist": [],
        }
    )
    overall = groups["__overall__"]

    def add(intent: str | None, key: str, value: Any) -> None:
        for g in (overall, groups[intent or "unknown"]):
            if key == "conv":
                g["conv"] += 1
            elif key == "dec":
                g["dec"][value] += 1
            else:
                g[key].append(value)

    with db.session() as s:
        intents = dict(s.execute(select(Conversation.id, Conversation.intent)).tuples().all())
        for c in s.scalars(select(Conversation)):
            first = c.first_customer_message_at
            if first and start <= first < end:
                add(c.intent, "conv", None)
                if c.first_response_at:
                    add(c.intent, "frt", (c.first_response_at - first).total_seconds())
            if c.resolved_at and start <= c.resolved_at < end and first:
                add(c.intent, "res", (c.resolved_at - first).total_seconds())
        for w in s.scalars(select(SlaCycle)):
            if start <= w.started_at < end and (w.responded_at is not None or now > w.due_at):
                add(intents[w.conversation_id], "sla", bool(w.met) if w.responded_at is not None else False)
        for sv in s.scalars(select(Survey)):
            if sv.score is not None and sv.answered_at and start <= sv.answered_at < end:
                kind = "csat" if sv.kind == "csat" else "nps"
                add(sv.intent or intents[sv.conversation_id], kind, sv.score)
        for d in s.scalars(select(Suggestion)):
            if d.decision is not None and d.decided_at and start <= d.decided_at < end:
                add(d.intent, "dec", d.decision)
                if d.decision == "edited" and d.edit_distance is not None:
                    add(d.intent, "dist", d.edit_distance)

    def pct(values: list[float]) -> dict[str, Any]:
        if not values:
            return {"count": 0, "p50_s": None, "p90_s": None, "mean_s": None}
        a = np.asarray(values, dtype=float)
        return {
            "count": len(values),
            "p50_s": round(float(np.percentile(a, 50)), 3),
            "p90_s": round(float(np.percentile(a, 90)), 3),
            "mean_s": round(float(a.mean()), 3),
        }

    def group(g: dict[str, Any]) -> dict[str, Any]:
        dec = g["dec"]
        decided = dec["approved"] + dec["edited"] + dec["rejected"]
        csat, nps = g["csat"], g["nps"]
        return {
            "conversations": g["conv"],
            "first_response": pct(g["frt"]),
            "resolution": pct(g["res"]),
            "sla_cycles": len(g["sla"]),
            "sla_met_pct": round(100 * sum(g["sla"]) / len(g["sla"]), 2) if g["sla"] else None,
            "csat_responses": len(csat),
            "csat_mean": round(sum(csat) / len(csat), 3) if csat else None,
            "csat_pct": round(100 * sum(x >= 4 for x in csat) / len(csat), 2) if csat else None,
            "nps_responses": len(nps),
            "nps": round(100 * (sum(x >= 9 for x in nps) - sum(x <= 6 for x in nps)) / len(nps), 2)
            if nps
            else None,
            "suggestions": {
                "decided": decided,
                "approved": dec["approved"],
                "edited": dec["edited"],
                "rejected": dec["rejected"],
                "acceptance_rate": round(dec["approved"] / decided, 4) if decided else None,
                "edit_rate": round(dec["edited"] / decided, 4) if decided else None,
                "reject_rate": round(dec["rejected"] / decided, 4) if decided else None,
                "mean_edit_distance": round(sum(g["dist"]) / len(g["dist"]), 3) if g["dist"] else None,
            },
        }

    del groups["__overall__"]
    return {
        "overall": group(overall),
        "per_intent": {k: group(v) for k, v in sorted(groups.items())},
    }


@pytest.fixture
def history(db_url, tmp_path):
    from service.clock import ManualClock

    db = Database(db_url)
    db.migrate()
    now = ManualClock().now()
    _seed(db, now)
    yield db, now
    db.dispose()


@pytest.mark.parametrize(
    "window",
    [
        pytest.param((timedelta(hours=1), timedelta(0)), id="last hour (open waits not yet due)"),
        pytest.param((timedelta(hours=6), timedelta(0)), id="last 6 hours"),
        pytest.param((timedelta(days=1), timedelta(hours=2)), id="a day that ended 2 hours ago"),
        pytest.param((timedelta(days=30), timedelta(0)), id="30 days: the whole history"),
        pytest.param((timedelta(days=60), timedelta(days=31)), id="before the history: empty"),
    ],
)
def test_the_kpis_counted_in_sql_equal_the_definitions_counted_row_by_row(history, window):
    db, now = history
    start, end = now - window[0], now - window[1]
    got = compute_kpis(db, start, end, now).model_dump(mode="json", by_alias=True)
    expected = _by_hand(db, start, end, now)
    assert got["overall"] == expected["overall"]
    assert got["per_intent"] == expected["per_intent"]
    if window[0] == timedelta(days=30):
        assert got["overall"]["conversations"] == CONVERSATIONS and got["overall"]["sla_cycles"] > 0


def test_the_history_has_what_the_kpis_distinguish(history):
    """The seeded rows reach every branch: open waits before and past their due time, met and missed ones,
    both survey kinds, every decision, an empty intent and a survey's own intent."""
    db, now = history
    with db.session() as s:
        waits = s.scalars(select(SlaCycle)).all()
        assert any(w.responded_at is None and w.due_at > now for w in waits)
        assert any(w.responded_at is None and w.due_at < now for w in waits)
        assert {True, False} <= {w.met for w in waits if w.responded_at is not None}
        assert {"csat", "nps"} <= set(s.scalars(select(Survey.kind).where(Survey.score.is_not(None))))
        assert {"approved", "edited", "rejected"} <= set(s.scalars(select(Suggestion.decision)))
        assert "" in set(s.scalars(select(Conversation.intent)))
        assert "survey_intent" in set(s.scalars(select(Survey.intent).where(Survey.score.is_not(None))))
