"""Growth (issue #16, item 5): `GET /v1/queue`, `GET /v1/conversations/{id}`, `GET /v1/metrics/kpis`, the
helpdesk's pull `GET /v1/messages?direction=outbound&status=queued` and ingest (`POST /v1/messages`) on a
PostgreSQL database seeded with 10,000 and 100,000 conversations (about 10 messages each, so 1,000,000
messages at the largest size), without and with the growth indexes (migrations 0006 and 0010), side by side
in one run.

The database: the local PostgreSQL of `scripts/postgres.sh` (or `--database-url`), a throw-away database per
size, migrated to head, then the growth indexes dropped (0010's `downgrade`, then 0006's): the schema
"before". Seeded with
`COPY` in chunks of 2,000 conversations, in the shape the service writes: a business receiving
`RATE_PER_DAY` conversations a day for as long as the size takes (10,000: about five weeks, 100,000: a year),
so a bigger database is a longer history, not a busier week. Per conversation: a customer (a quarter of them
returning), a channel, urgency, intent and language; turns of 1–3 customer messages answered by an agent
reply (messages per conversation log-normal, mean about 10, up to 300); each turn's drafts (1–3, the sent
one approved or edited, the rest superseded; pending while the customer still waits), its SLA wait (met or
not) and the events the service appends (`message.received`, `suggestions.created`, `message.sent`,
`conversation.resolved`). Conversations older than 3 days are resolved except 0.5 % left open (forgotten);
younger ones are open half of the time, most of those waiting for an answer with unread messages, a third
assigned to an agent; a third of resolved conversations got a CSAT or NPS survey, 40 % of those answered.
Then `VACUUM ANALYZE` (what autovacuum keeps true of a live database).

The app runs in-process (`create_app` with that database, `workers_enabled=false`, an admin key and an agent
key with conversations assigned to it; `TestClient`, so there is no network in the figures), no LLM
(template drafts). Each route is requested `--requests` times after 3 warm-up requests (a conversation: a
different random one each time); then `--ingests` ingests, half continuing an open conversation, half
opening a new one. Every SQL statement of one request per route is recorded and `EXPLAIN (ANALYZE, BUFFERS)`
of each SELECT is kept in the JSON with its time, so the plans show which index each query uses. Then the
growth indexes are built (0006's `upgrade`, then 0010's; timed: what the migrations cost on that database),
`VACUUM ANALYZE` (index-only scans need the visibility map autovacuum keeps), and the same again: "after".
The growth table compares the sizes "after".

`python -m bench.growth [--conversations 10000,100000] [--requests 30] [--ingests 30] [--small] [--keep]`
writes `bench/results/growth-<UTC time>.json` and prints the table; `--small` (1,000 and 5,000
conversations, fewer requests) is a quick check of the whole path.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import queue
import random
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from bench import write_result
from bench.console import _code_version, stats
from bench.load import message as sample_text
from service.db import Database
from service.db.engine import alembic_config
from service.settings import REPO_ROOT

GROWTH_REVISION = "0006"
# every revision that adds growth indexes, in order (0010 replaces two of 0006's by covering ones)
GROWTH_REVISIONS = ("0006", "0010")
RATE_PER_DAY = 274  # conversations a day: 100,000 is a year of history
CHUNK = 2_000  # conversations per COPY round
CHANNELS = [
    ("whatsapp", 45),
    ("messenger", 15),
    ("instagram", 10),
    ("sms", 10),
    ("webchat", 15),
    ("email", 5),
]
URGENCY = [("normal", 70), ("high", 15), ("low", 10), ("critical", 5)]
SLA_MINUTES = {  # (first response, next response) targets per urgency, at risk at 75 %
    "critical": (15, 30),
    "high": (60, 120),
    "normal": (240, 480),
    "low": (480, 960),
}
INTENTS = [
    "order_status",
    "refund_request",
    "return_item",
    "cancel_order",
    "change_address",
    "damaged_item",
    "billing_issue",
    "account_access",
    "product_question",
    "delivery_delay",
    "book_appointment",
    "complaint",
]
LANGUAGES = [("en", 55), ("es", 15), ("de", 10), ("fr", 10), ("pt", 10)]
AGENTS = [f"agent-{i}" for i in range(8)]
MINE = AGENTS[0]  # the bench's agent key takes over these conversations
REPLIES = [
    "Thanks for reaching out! I've checked order {order}: it left our warehouse and should arrive in 2 days.",
    "Sorry about that. I've started a refund for {order}; you'll see it within 5 business days.",
    "Happy to help. Here is your return label for {order}; drop it at any post office.",
    "I've updated the delivery address on {order}. Anything else I can do?",
]


def _weighted(rng: random.Random, choices: list[tuple[str, int]]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


# -- seeding -------------------------------------------------------------------------------------------------

COLUMNS = {
    "customers": ("id", "channel", "external_id", "name", "locale", "country", "created_at"),
    "conversations": (
        "id",
        "channel",
        "external_id",
        "customer_id",
        "status",
        "urgency",
        "intent",
        "language",
        "created_at",
        "updated_at",
        "first_customer_message_at",
        "first_response_at",
        "last_customer_message_at",
        "last_agent_message_at",
        "awaiting_since",
        "current_sla_id",
        "resolved_at",
        "resolved_by",
        "opened_at",
        "extra",
        "assigned_to",
        "assigned_key_id",
        "assigned_at",
    ),
    "messages": (
        "id",
        "conversation_id",
        "channel",
        "direction",
        "kind",
        "channel_message_id",
        "text",
        "attachments",
        "author",
        "author_key_id",
        "status",
        "created_at",
        "customer_sent_at",
        "sent_at",
        "delivered_at",
        "read_at",
        "agent_read_at",
        "agent_read_by",
        "suggestion_id",
        "pipeline_status",
        "pipeline_attempts",
        "triage",
    ),
    "suggestions": (
        "id",
        "conversation_id",
        "message_id",
        "rank",
        "draft_text",
        "final_text",
        "status",
        "decision",
        "intent",
        "intent_confidence",
        "language",
        "generator",
        "details",
        "created_at",
        "decided_at",
        "decided_by",
        "edit_distance",
        "sent_at",
        "outbound_message_id",
    ),
    "sla_cycles": (
        "id",
        "conversation_id",
        "message_id",
        "kind",
        "urgency",
        "started_at",
        "at_risk_at",
        "due_at",
        "responded_at",
        "closed_by",
        "met",
        "at_risk_emitted_at",
        "breached_emitted_at",
    ),
    "surveys": (
        "id",
        "conversation_id",
        "kind",
        "locale",
        "status",
        "score",
        "intent",
        "created_at",
        "expires_at",
        "answered_at",
    ),
    "events": ("id", "type", "conversation_id", "message_id", "payload", "created_at"),
}
TABLE_ORDER = ("customers", "conversations", "messages", "suggestions", "sla_cycles", "surveys", "events")


@dataclass
class Ids:
    customer: int = 0
    message: int = 0
    suggestion: int = 0
    cycle: int = 0
    survey: int = 0
    event: int = 0

    def next(self, name: str) -> int:
        value = getattr(self, name) + 1
        setattr(self, name, value)
        return value


@dataclass
class Rows:
    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {t: [] for t in TABLE_ORDER})

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.tables[table].append(row)


@dataclass
class SeedPlan:
    """What the seed made that the measurements need."""

    conversations: int
    open: list[tuple[int, str]] = field(default_factory=list)  # (conversation id, channel)
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLE_ORDER, 0))


class Pools:
    """Texts and JSON made once and picked from (building each row's own costs more than the COPY)."""

    def __init__(self, rng: random.Random) -> None:
        self.texts = [sample_text(rng, "seed", i)[0] for i in range(4096)]
        self.replies = [
            rng.choice(REPLIES).format(order=f"A{rng.randint(10000, 99999)}") for _ in range(1024)
        ]
        self.triage = {
            (intent, urgency): [_triage_json(rng, intent, urgency, lang) for lang, _ in LANGUAGES]
            for intent in [*INTENTS, "unknown"]
            for urgency in SLA_MINUTES
        }
        self.details = [
            json.dumps({"cited_article_ids": [f"kb-{rng.randint(1, 300)}"], "tone_findings": []})
            for _ in range(256)
        ]


def _triage_json(rng: random.Random, intent: str, urgency: str, language: str) -> str:
    """A pipeline result of a realistic size (the thread never reads it; the analysis panel does)."""
    return json.dumps(
        {
            "triage": {
                "intent": {"label": intent, "confidence": round(rng.uniform(0.5, 0.99), 3)},
                "urgency": {"level": urgency, "score": round(rng.random(), 3), "reasons": ["waiting"]},
                "sentiment": {"label": rng.choice(["negative", "neutral", "positive"]), "score": 0.4},
                "language": language,
                "entities": [{"type": "order_id", "value": f"A{rng.randint(10000, 99999)}"}],
            },
            "articles": [{"id": f"kb-{rng.randint(1, 300)}", "score": 0.61}],
            "handoff": {"required": False, "reasons": []},
        },
        separators=(",", ":"),
    )


def _conversation(
    rng: random.Random, pools: Pools, ids: Ids, rows: Rows, plan: SeedPlan, conv_id: int, now: datetime
) -> None:
    n = plan.conversations
    created = now - timedelta(days=(n - conv_id) / RATE_PER_DAY, minutes=rng.uniform(0, 300))
    age = now - created
    channel = _weighted(rng, CHANNELS)
    urgency = _weighted(rng, URGENCY)
    intent = rng.choice(INTENTS) if rng.random() < 0.9 else None
    language = _weighted(rng, LANGUAGES)
    if ids.customer and rng.random() < 0.25:
        customer_id = rng.randint(1, ids.customer)
    else:
        customer_id = ids.next("customer")
        rows.add(
            "customers",
            (
                customer_id,
                channel,
                f"cust-{customer_id}",
                f"Customer {customer_id}",
                f"{language}-XX",
                rng.choice(["GB", "US", "ES", "DE", "FR", "BR", "MX"]),
                created,
            ),
        )
    open_ = rng.random() < (0.5 if age < timedelta(days=3) else 0.005)
    waiting = open_ and rng.random() < 0.7
    total = min(300, max(1, int(rng.lognormvariate(math.log(10) - 0.32, 0.8))))
    if waiting and total < 2:
        total = 2
    first_target, next_target = SLA_MINUTES[urgency]
    triage = pools.triage[(intent or "unknown", urgency)]
    # times: the conversation's messages spread over a span ending before now (recent ones end close to now)
    span_min = min(age.total_seconds() / 60 * 0.9, total * rng.uniform(5, 40))
    step = span_min / max(1, total)
    t = created
    latest = now - timedelta(minutes=1)  # nothing happens in the future
    msgs_left = total
    first_customer = first_response = last_customer = last_agent = None
    current_sla = None
    awaiting = None
    turn = 0
    while msgs_left > 0:
        turn += 1
        inbound = min(msgs_left, rng.choice((1, 1, 2, 3)))
        msgs_left -= inbound
        answered = msgs_left > 0 or not waiting
        turn_start = t
        last_in_id = 0
        for _ in range(inbound):
            mid = ids.next("message")
            last_in_id = mid
            text = pools.texts[mid & 4095]
            unread = waiting and msgs_left == 0
            rows.add(
                "messages",
                (
                    mid,
                    conv_id,
                    channel,
                    "inbound",
                    "customer",
                    f"in-{mid}",
                    text,
                    "[]",
                    None,
                    None,
                    "received",
                    t,
                    t - timedelta(seconds=2),
                    None,
                    None,
                    None,
                    None if unread else t + timedelta(minutes=step / 2),
                    None if unread else rng.choice(AGENTS),
                    None,
                    "done",
                    1,
                    triage[mid % len(triage)],
                ),
            )
            payload = f'{{"message_id":{mid},"conversation_id":{conv_id},"text":{json.dumps(text[:120])}}}'
            rows.add("events", (ids.next("event"), "message.received", conv_id, mid, payload, t))
            first_customer = first_customer or t
            last_customer = t
            t = min(latest, t + timedelta(minutes=step * rng.uniform(0.2, 1.0)))
        kind = "first_response" if first_response is None else "next_response"
        target = first_target if kind == "first_response" else next_target
        cycle_id = ids.next("cycle")
        due = turn_start + timedelta(minutes=target)
        at_risk = turn_start + timedelta(minutes=target * 0.75)
        # drafts for the turn's last customer message
        k = rng.choice((1, 1, 2, 3))
        sug_ids = [ids.next("suggestion") for _ in range(k)]
        rows.add(
            "events",
            (
                ids.next("event"),
                "suggestions.created",
                conv_id,
                last_in_id,
                f'{{"suggestion_ids":{sug_ids},"message_id":{last_in_id}}}',
                turn_start + timedelta(seconds=1),
            ),
        )
        if not answered:
            current_sla, awaiting = cycle_id, turn_start
            rows.add(
                "sla_cycles",
                (cycle_id, conv_id, last_in_id, kind, urgency, turn_start, at_risk, due, None, None, None)
                + (at_risk if now >= at_risk else None, due if now >= due else None),
            )
            for rank, sid in enumerate(sug_ids, 1):
                rows.add(
                    "suggestions",
                    _suggestion(pools, sid, conv_id, last_in_id, rank, intent, language, turn_start),
                )
            break
        reply_at = min(latest, t + timedelta(minutes=rng.uniform(1, target * 1.3)))
        t = min(latest, reply_at + timedelta(minutes=step * rng.uniform(0.2, 1.0)))
        out_id = ids.next("message")
        from_draft = rng.random() < 0.7
        sent_sid = sug_ids[0] if from_draft else None
        decision = rng.choice(("approved", "approved", "edited")) if from_draft else None
        for rank, sid in enumerate(sug_ids, 1):
            row = dict(
                zip(
                    COLUMNS["suggestions"],
                    _suggestion(pools, sid, conv_id, last_in_id, rank, intent, language, turn_start),
                    strict=True,
                )
            )
            if sid == sent_sid:
                edited = decision == "edited"
                row.update(
                    final_text=row["draft_text"] + (" Best regards." if edited else ""),
                    status="sent",
                    decision=decision,
                    decided_at=reply_at,
                    decided_by=rng.choice(AGENTS),
                    edit_distance=rng.randint(5, 60) if edited else None,
                    sent_at=reply_at,
                    outbound_message_id=out_id,
                )
            elif not from_draft and rank == 1 and rng.random() < 0.5:
                row.update(
                    status="rejected", decision="rejected", decided_at=reply_at, decided_by=rng.choice(AGENTS)
                )
            else:
                row.update(status="superseded")
            rows.add("suggestions", tuple(row.values()))
        agent = rng.choice(AGENTS)
        reply = pools.replies[out_id & 1023]
        status = rng.choice(("read", "read", "delivered", "sent")) if rng.random() > 0.01 else "failed"
        rows.add(
            "messages",
            (
                out_id,
                conv_id,
                channel,
                "outbound",
                "reply",
                f"out-{out_id}",
                reply,
                "[]",
                agent,
                agent,
                status,
                reply_at,
                None,
                reply_at,
                reply_at + timedelta(seconds=3) if status in ("delivered", "read") else None,
                reply_at + timedelta(minutes=2) if status == "read" else None,
                None,
                None,
                sent_sid,
                None,
                0,
                None,
            ),
        )
        rows.add(
            "events",
            (
                ids.next("event"),
                "message.sent",
                conv_id,
                out_id,
                f'{{"message_id":{out_id}}}',
                reply_at,
            ),
        )
        met = reply_at <= due
        rows.add(
            "sla_cycles",
            (cycle_id, conv_id, last_in_id, kind, urgency, turn_start, at_risk, due, reply_at, "reply", met)
            + (at_risk if reply_at >= at_risk else None, due if not met else None),
        )
        first_response = first_response or reply_at
        last_agent = reply_at
        msgs_left -= 1 if msgs_left > 0 else 0
    resolved_at = None if open_ else min(latest, t + timedelta(minutes=rng.uniform(5, 120)))
    if resolved_at is not None:
        rows.add(
            "events",
            (
                ids.next("event"),
                "conversation.resolved",
                conv_id,
                None,
                f'{{"conversation_id":{conv_id}}}',
                resolved_at,
            ),
        )
        if rng.random() < 0.33:
            kind = "csat" if rng.random() < 0.7 else "nps"
            answered_survey = rng.random() < 0.4
            score = (rng.randint(1, 5) if kind == "csat" else rng.randint(0, 10)) if answered_survey else None
            rows.add(
                "surveys",
                (
                    ids.next("survey"),
                    conv_id,
                    kind,
                    f"{language}-XX",
                    "answered" if answered_survey else "sent",
                    score,
                    intent,
                    resolved_at,
                    resolved_at + timedelta(days=2),
                    resolved_at + timedelta(hours=rng.uniform(0.1, 30)) if answered_survey else None,
                ),
            )
    assigned = (open_ and rng.random() < 0.35) or (not open_ and rng.random() < 0.6)
    assignee = rng.choice(AGENTS) if assigned else None
    updated = resolved_at or t
    rows.add(
        "conversations",
        (
            conv_id,
            channel,
            f"conv-{conv_id}",
            customer_id,
            "open" if open_ else "resolved",
            urgency,
            intent,
            language,
            created,
            updated,
            first_customer,
            first_response,
            last_customer,
            last_agent,
            awaiting,
            current_sla,
            resolved_at,
            rng.choice(AGENTS) if resolved_at else None,
            created,
            "{}",
            assignee,
            assignee,
            created + timedelta(minutes=1) if assignee else None,
        ),
    )
    if open_:
        plan.open.append((conv_id, channel))


def _suggestion(
    pools: Pools,
    sid: int,
    conv_id: int,
    message_id: int,
    rank: int,
    intent: str | None,
    language: str,
    created: datetime,
) -> tuple[Any, ...]:
    draft = pools.replies[sid & 1023]
    details = pools.details[sid & 255]
    return (
        sid,
        conv_id,
        message_id,
        rank,
        draft,
        None,
        "pending",
        None,
        intent,
        0.4 + (sid % 60) / 100,
        language,
        "template",
        details,
        created + timedelta(seconds=1),
        None,
        None,
        None,
        None,
        None,
    )


def seed(url: str, conversations: int, now: datetime, log: Callable[[str], None]) -> tuple[SeedPlan, float]:
    """COPY the conversations in chunks of `CHUNK`; returns the plan and the seconds it took. One thread
    builds the next chunk while another streams the previous one, so the server's work (parsing, foreign
    keys, indexes) overlaps with Python's."""
    rng = random.Random(16)
    pools = Pools(rng)
    ids = Ids()
    plan = SeedPlan(conversations=conversations)
    t0 = time.perf_counter()
    chunks: queue.Queue[Rows | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []
    ended = threading.Event()

    def writer() -> None:
        try:
            with psycopg.connect(_dsn(url)) as conn:
                while (rows := chunks.get()) is not None:
                    with conn.cursor() as cur:
                        for table in TABLE_ORDER:
                            data = rows.tables[table]
                            if not data:
                                continue
                            with cur.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
                                for row in data:
                                    copy.write_row(row)
                            plan.rows[table] += len(data)
                    conn.commit()
                    done = plan.rows["conversations"]
                    if done % (CHUNK * 10) == 0 or done == conversations:
                        log(f"    seeded {done:,} conversations, {plan.rows['messages']:,} messages")
                ended.set()
                with conn.cursor() as cur:
                    for table in TABLE_ORDER:
                        cur.execute(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))"
                        )
                conn.commit()
        except psycopg.Error as exc:
            failure.append(exc)
            while not ended.is_set() and chunks.get() is not None:  # let the producer finish
                pass

    thread = threading.Thread(target=writer, name="growth-seed-copy")
    thread.start()
    try:
        for lo in range(1, conversations + 1, CHUNK):
            rows = Rows()
            for conv_id in range(lo, min(conversations, lo + CHUNK - 1) + 1):
                _conversation(rng, pools, ids, rows, plan, conv_id, now)
            chunks.put(rows)
    finally:
        chunks.put(None)
        thread.join()
    if failure:
        raise failure[0]
    return plan, time.perf_counter() - t0


# -- database ------------------------------------------------------------------------------------------------


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def postgres_url() -> str:
    """The local test server's URL (`scripts/postgres.sh` starts it if needed and prints it last)."""
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "postgres.sh")], capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def scratch_database(base_url: str, name: str, keep: bool) -> Iterator[str]:
    admin_dsn = _dsn(base_url)
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def growth_migration(url: str, revision: str = GROWTH_REVISION) -> ModuleType:
    """A growth migration's module (its `upgrade`, `downgrade` and `INDEXES`; 0006 unless told)."""
    script = ScriptDirectory.from_config(alembic_config(url)).get_revision(revision)
    if script is None or script.module is None:
        raise RuntimeError(f"migration {revision} is missing")
    return script.module


def growth_migrations(url: str) -> list[ModuleType]:
    """The growth migrations' modules, oldest first."""
    return [growth_migration(url, revision) for revision in GROWTH_REVISIONS]


def head_growth_indexes(url: str) -> list[Any]:
    """The growth indexes a database migrated to head has: each revision's `INDEXES`, less those a later one
    `REPLACES`."""
    indexes: dict[str, Any] = {}
    for module in growth_migrations(url):
        for ix in getattr(module, "REPLACES", ()):
            indexes.pop(ix.name, None)
        indexes.update((ix.name, ix) for ix in module.INDEXES)
    return list(indexes.values())


def run_migration_step(db: Database, module: ModuleType, step: str) -> float:
    """Run a growth migration's `upgrade` or `downgrade` on the database without moving `alembic_version`
    (the app sees head either way, so "before" is head minus the growth indexes)."""
    t0 = time.perf_counter()
    with db.engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
        getattr(module, step)()
    return time.perf_counter() - t0


def vacuum_analyze(url: str, full: bool) -> float:
    t0 = time.perf_counter()
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE" if full else "ANALYZE")
    return time.perf_counter() - t0


def sizes_of(url: str) -> dict[str, Any]:
    with psycopg.connect(_dsn(url)) as conn:
        db_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        tables = conn.execute(
            "SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
            "ORDER BY pg_total_relation_size(c.oid) DESC"
        ).fetchall()
        growth_ix = conn.execute(
            "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes ORDER BY 1"
        ).fetchall()
    mb = 1024 * 1024
    return {
        "database_mb": round((db_bytes[0] if db_bytes else 0) / mb, 1),
        "tables_mb": {
            name: {"table": round(t / mb, 1), "indexes": round(i / mb, 1)} for name, t, i in tables
        },
        "index_mb": {name: round(size / mb, 2) for name, size in growth_ix},
    }


# -- measuring -----------------------------------------------------------------------------------------------


@dataclass
class Statements:
    """The SQL statements the app runs while recording (to EXPLAIN them afterwards)."""

    recording: bool = False
    seen: list[tuple[str, Any]] = field(default_factory=list)
    db_s: float = 0.0  # time spent in the database driver since the last reset (one request at a time)

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._on_execute)
        event.listen(engine, "after_cursor_execute", self._after_execute)

    def _after_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        started = conn.info.pop("growth_t0", None)
        if started is not None:
            self.db_s += time.perf_counter() - started

    def _on_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        conn.info["growth_t0"] = time.perf_counter()
        if self.recording and not many and statement.lstrip().upper().startswith("SELECT"):
            self.seen.append((statement, parameters))

    @contextmanager
    def record(self) -> Iterator[list[tuple[str, Any]]]:
        self.seen = []
        self.recording = True
        try:
            yield self.seen
        finally:
            self.recording = False


def explain(url: str, statements: list[tuple[str, Any]], keep: int = 6) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each distinct SELECT, slowest first (the `keep` slowest)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    with psycopg.connect(_dsn(url)) as conn:
        for sql, params in statements:
            if sql in seen:
                continue
            seen.add(sql)
            with conn.cursor() as cur:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                plan = [r[0] for r in cur.fetchall()]
            conn.rollback()
            total = next((ln for ln in reversed(plan) if ln.startswith("Execution Time")), "")
            ms = float(total.split(":")[1].split()[0]) if total else 0.0
            out.append({"sql": " ".join(sql.split())[:600], "execution_ms": ms, "plan": plan})
    out.sort(key=lambda e: -float(e["execution_ms"]))
    return out[:keep]


def _timed(fn: Callable[[], Any], n: int, statements: Statements) -> tuple[list[float], list[float]]:
    """Wall time of each call, and the part of it spent in the database (statements sent to the answer)."""
    wall, db = [], []
    for _ in range(n):
        statements.db_s = 0.0
        t0 = time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        db.append(statements.db_s * 1000)
    return wall, db


def measure(
    client: Any,
    agent_headers: dict[str, str],
    url: str,
    statements: Statements,
    plan: SeedPlan,
    *,
    requests: int,
    ingests: int,
    phase: str,
    rng: random.Random,
) -> dict[str, Any]:
    def get(path: str, headers: dict[str, str] | None = None) -> Callable[[], Any]:
        def call() -> Any:
            r = client.get(path, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"GET {path}: {r.status_code} {r.text[:300]}")
            return r

        return call

    def conversation() -> Any:
        return get(f"/v1/conversations/{rng.randint(1, plan.conversations)}")()

    week_ago = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    routes: dict[str, tuple[str, Callable[[], Any]]] = {
        "queue": ("GET /v1/queue", get("/v1/queue")),
        "queue_unassigned": ("GET /v1/queue?assigned=unassigned", get("/v1/queue?assigned=unassigned")),
        "queue_mine": (
            "GET /v1/queue?assigned=mine (agent key)",
            get("/v1/queue?assigned=mine", agent_headers),
        ),
        "conversation": ("GET /v1/conversations/{random id}", conversation),
        "kpis_30d": ("GET /v1/metrics/kpis (default: 30 days)", get("/v1/metrics/kpis")),
        "kpis_7d": (
            "GET /v1/metrics/kpis?from=now-7d",
            get(f"/v1/metrics/kpis?from={week_ago}"),
        ),
        "messages_pull": (
            "GET /v1/messages?direction=outbound&status=queued&limit=100",
            get("/v1/messages?direction=outbound&status=queued&limit=100"),
        ),
    }
    out: dict[str, Any] = {}
    for name, (label, fn) in routes.items():
        for _ in range(3):
            fn()
        with statements.record() as seen:
            fn()
        captured = list(seen)
        wall, db = _timed(fn, requests, statements)
        out[name] = {
            "route": label,
            "ms": stats(wall),
            "db_ms": stats(db),
            "statements": len(captured),
            "explain": explain(url, captured),
        }
    # ingest: half continue an open conversation (its customer writes again), half open a new one
    nonce = uuid.uuid4().hex[:6]
    bodies = []
    for i in range(ingests):
        text, locale = sample_text(rng, nonce, i)
        if i % 2 == 0 and plan.open:
            conv_id, channel = rng.choice(plan.open)
            conv_ext, cust = f"conv-{conv_id}", f"cust-ingest-{conv_id}"
        else:
            channel, conv_ext, cust = "webchat", f"new-{phase}-{nonce}-{i}", f"cust-new-{nonce}-{i}"
        bodies.append(
            {
                "channel": channel,
                "conversation_external_id": conv_ext,
                "customer": {"id": cust, "locale": locale},
                "text": text,
                "sent_at": datetime.now(UTC).isoformat(),
                "channel_message_id": f"bench-{phase}-{nonce}-{i}",
            }
        )
    for warm in range(2):
        client.post(
            "/v1/messages",
            json={
                **bodies[0],
                "channel_message_id": f"warm-{phase}-{nonce}-{warm}",
                "conversation_external_id": f"warm-{phase}-{nonce}-{warm}",
            },
        )
    ingest_ms, ingest_db_ms = [], []
    ingest_statements: list[tuple[str, Any]] = []
    for i, body in enumerate(bodies):
        statements.db_s = 0.0
        with statements.record() as seen:
            t0 = time.perf_counter()
            r = client.post("/v1/messages", json=body)
            ingest_ms.append((time.perf_counter() - t0) * 1000)
        ingest_db_ms.append(statements.db_s * 1000)
        if i == 0:
            ingest_statements = list(seen)
        if r.status_code != 201:
            raise RuntimeError(f"POST /v1/messages: {r.status_code} {r.text[:300]}")
    out["ingest"] = {
        "route": "POST /v1/messages (store, triage, drafts; half into open conversations)",
        "ms": stats(ingest_ms),
        "db_ms": stats(ingest_db_ms),
        "statements": len(ingest_statements),
        "explain": explain(url, ingest_statements),
    }
    return out


# -- one size ------------------------------------------------------------------------------------------------


def run_size(
    base_url: str, conversations: int, *, requests: int, ingests: int, keep: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from service.api import create_app
    from service.auth.models import ApiKeyCreate
    from service.settings import Settings

    name = f"replydesk_growth_{conversations}_{uuid.uuid4().hex[:6]}"
    log(f"== {conversations:,} conversations (database {name})")
    result: dict[str, Any] = {"conversations": conversations}
    with scratch_database(base_url, name, keep) as url:
        db = Database(url)
        db.migrate()
        modules = growth_migrations(url)
        for module in reversed(modules):  # "before": head without the growth indexes
            run_migration_step(db, module, "downgrade")
        now = datetime.now(UTC)
        plan, seed_s = seed(url, conversations, now, log)
        vacuum_s = vacuum_analyze(url, full=True)
        log(
            f"  seeded in {seed_s:.0f} s ({plan.rows['messages']:,} messages), "
            f"VACUUM ANALYZE {vacuum_s:.0f} s"
        )
        result["seed"] = {
            "seconds": round(seed_s, 1),
            "vacuum_analyze_s": round(vacuum_s, 1),
            "rows": plan.rows,
            "open_conversations": len(plan.open),
            "history_days": round(conversations / RATE_PER_DAY, 1),
        }
        result["size_before"] = sizes_of(url)
        with tempfile.TemporaryDirectory(prefix="replydesk-growth-") as tmp:
            settings = Settings(
                data_dir=Path(tmp),
                cache_dir=REPO_ROOT / "data" / "cache",
                llm_base_url=None,
                database_url=url,
                workers_enabled=False,
            )
            app = create_app(settings)
            container = app.state.container
            statements = Statements()
            statements.attach(container.db.engine)
            with TestClient(app) as client:
                admin = container.keys.create(
                    ApiKeyCreate(name="growth-admin", role="admin", rate_limit="1000000/minute")
                )
                agent = container.keys.create(
                    ApiKeyCreate(name="growth-agent", role="agent", rate_limit="1000000/minute")
                )
                client.headers["Authorization"] = f"Bearer {admin.key}"
                with psycopg.connect(_dsn(url)) as conn:
                    conn.execute(
                        "UPDATE conversations SET assigned_key_id = %s, assigned_to = %s "
                        "WHERE assigned_key_id = %s",
                        (agent.id, agent.name, MINE),
                    )
                agent_headers = {"Authorization": f"Bearer {agent.key}"}
                rng = random.Random(5)
                log("  before (no growth indexes)")
                result["before"] = measure(
                    client,
                    agent_headers,
                    url,
                    statements,
                    plan,
                    requests=requests,
                    ingests=ingests,
                    phase="before",
                    rng=rng,
                )
                result["growth_indexes_s"] = round(
                    sum(run_migration_step(db, module, "upgrade") for module in modules), 1
                )
                vacuum_analyze(url, full=True)
                # new connections, as after a deploy: a statement psycopg prepared "before" keeps its plan
                # cache's history, and may stay on a generic plan chosen while the index was missing
                container.db.engine.dispose()
                log(f"  growth indexes built in {result['growth_indexes_s']} s; after")
                rng = random.Random(5)
                result["after"] = measure(
                    client,
                    agent_headers,
                    url,
                    statements,
                    plan,
                    requests=requests,
                    ingests=ingests,
                    phase="after",
                    rng=rng,
                )
        result["size_after"] = sizes_of(url)
        db.dispose()
    return result


# -- report --------------------------------------------------------------------------------------------------


def table(result: dict[str, Any]) -> str:
    """Markdown: per route and size, wall p50 / p95 ms before and after the growth indexes, and the
    database's share."""
    sizes = result["sizes"]
    cols = " | ".join(f"{s['conversations']:,} before | {s['conversations']:,} after" for s in sizes)
    rows = [
        f"| route (wall p50 / p95 ms, db p50 ms) | {cols} |",
        "|---|" + "---|---|" * len(sizes),
    ]
    for name, entry in sizes[0]["after"].items():
        cells = []
        for s in sizes:
            for phase in ("before", "after"):
                r = s[phase][name]
                cells.append(f"{r['ms']['p50']} / {r['ms']['p95']} ({r['db_ms']['p50']})")
        rows.append(f"| `{entry['route']}` | " + " | ".join(cells) + " |")
    lines = ["\n".join(rows), ""]
    for s in sizes:
        seed_ = s["seed"]
        lines.append(
            f"- {s['conversations']:,} conversations ({seed_['history_days']} days): "
            f"{seed_['rows']['messages']:,} messages, {seed_['open_conversations']:,} open, seeded in "
            f"{seed_['seconds']} s (+ VACUUM ANALYZE {seed_['vacuum_analyze_s']} s), database "
            f"{s['size_after']['database_mb']} MB, growth indexes built in {s['growth_indexes_s']} s"
        )
    return "\n".join(lines)


def run_growth_bench(
    sizes: list[int],
    *,
    requests: int,
    ingests: int,
    keep: bool = False,
    database_url: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    base_url = database_url or os.environ.get("REPLYDESK_TEST_POSTGRES_URL") or postgres_url()
    t0 = time.perf_counter()
    results = [run_size(base_url, n, requests=requests, ingests=ingests, keep=keep, log=log) for n in sizes]
    return {
        "benchmark": "growth",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "code": _code_version(),
        "settings": "PostgreSQL (scripts/postgres.sh: fsync off), app in-process (TestClient), workers off, "
        "no LLM (template drafts), no knowledge-base index (drafts cite no article)",
        "requests_per_route": requests,
        "ingests": ingests,
        "growth_indexes": [ix._asdict() for ix in head_growth_indexes(base_url)],
        "sizes": results,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", default="10000,100000", help="Sizes, comma-separated.")
    parser.add_argument("--requests", type=int, default=30, help="Timed requests per route and phase.")
    parser.add_argument("--ingests", type=int, default=30, help="Timed ingests per phase.")
    parser.add_argument("--small", action="store_true", help="1,000 and 5,000 conversations, 8 requests.")
    parser.add_argument("--keep", action="store_true", help="Keep the seeded databases.")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: scripts/postgres.sh).")
    parser.add_argument("--out", default=None, help="JSON output (default bench/results/growth-<time>.json).")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # no knowledge-base index in the scratch data dir: drafts come without articles (one warning per ingest)
    logging.getLogger("replydesk.kb").setLevel(logging.ERROR)
    sizes = [1000, 5000] if args.small else [int(s) for s in args.conversations.split(",") if s.strip()]
    requests, ingests = (8, 8) if args.small else (args.requests, args.ingests)
    result = run_growth_bench(
        sizes, requests=requests, ingests=ingests, keep=args.keep, database_url=args.database_url
    )
    path = write_result(result, Path(args.out) if args.out else None, "growth")
    print(table(result))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
