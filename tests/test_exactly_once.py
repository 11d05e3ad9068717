"""Exactly once across worker processes: two workflows, each with its own engine (as two `replydesk worker`
processes have), scan and resolve over ONE database at the same moment, many times over. Each wait's
`sla.at_risk` and `sla.breached` is announced once, and each resolution queues one survey, because the insert
relies on a unique key (`events.dedupe_key`, `surveys.dedupe_key`) and takes its violation as "another worker
did it", never on looking first and inserting after. Neither racer sees an error.

The PostgreSQL case is the one that matters (READ COMMITTED, real concurrency); SQLite serialises writers and
must give the same counts.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import func, select

from service.auth.models import Principal, Role
from service.clock import ManualClock
from service.container import Container
from service.db.models import Conversation, Customer, Event, Message, SlaCycle, Survey
from service.errors import Conflict
from service.settings import REPO_ROOT, Settings
from service.triage.models import UrgencyLevel
from service.workflow.models import ResolveRequest, SlaKind, SurveyKind
from service.workflow.service import Workflow
from service.workflow.survey_flow import queue_survey

ROUNDS = 12
WAITS_PER_ROUND = 15
RACERS = 2
T = TypeVar("T")


@contextmanager
def workers(db_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[list[Workflow]]:
    """`RACERS` workflows over the same database, each with its own Database (engine and pool)."""
    containers = []
    for n in range(RACERS):
        settings = Settings(
            data_dir=tmp_path / f"worker-{n}",
            cache_dir=REPO_ROOT / "data" / "cache",
            llm_base_url=None,
            database_url=db_url,
            workers_enabled=False,
        )
        container = Container(settings)
        container.clock = clock
        containers.append(container)
    try:
        yield [c.workflow for c in containers]
    finally:
        for c in containers:
            c.close()
            c.db.dispose()


def race(calls: list[Callable[[], T]]) -> list[T]:
    """Run the calls in threads released together by a barrier; their results in order (an error raised in
    one is raised here)."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [f.result(timeout=120) for f in futures]


def open_waits(workflow: Workflow, n: int, tag: str) -> list[int]:
    """`n` open conversations, each with a customer waiting for a first response from now on."""
    ctx = workflow.ctx
    now = ctx.clock.now()
    ids = []
    with ctx.db.session() as s:
        for i in range(n):
            customer = Customer(channel="sms", external_id=f"+3460{tag}{i:04d}", created_at=now)
            s.add(customer)
            s.flush()
            conv = Conversation(
                channel="sms",
                external_id=f"{tag}-{i}",
                customer_id=customer.id,
                status="open",
                urgency=UrgencyLevel.normal.value,
                created_at=now,
                updated_at=now,
                opened_at=now,
                first_customer_message_at=now,
                extra={},
            )
            s.add(conv)
            s.flush()
            at_risk_at, due_at = ctx.sla.schedule(SlaKind.first_response, UrgencyLevel.normal, now)
            cycle = SlaCycle(
                conversation_id=conv.id,
                kind=SlaKind.first_response.value,
                urgency=UrgencyLevel.normal.value,
                started_at=now,
                at_risk_at=at_risk_at,
                due_at=due_at,
            )
            s.add(cycle)
            s.flush()
            conv.current_sla_id = cycle.id
            ids.append(conv.id)
    return ids


def sla_events(workflow: Workflow) -> Counter[tuple[str, int]]:
    with workflow.db.session() as s:
        rows = s.execute(
            select(Event.type, Event.conversation_id).where(Event.type.in_(["sla.at_risk", "sla.breached"]))
        ).all()
    return Counter((t, c) for t, c in rows if c is not None)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_racing_sla_scans_announce_each_risk_and_each_breach_exactly_once(db_url, tmp_path, clock):
    with workers(db_url, tmp_path, clock) as racers:
        target = timedelta(minutes=racers[0].settings.sla_first_response_minutes["normal"])
        risk = target * racers[0].settings.sla_at_risk_ratio
        expected: Counter[tuple[str, int]] = Counter()
        for round_ in range(ROUNDS):
            convs = open_waits(racers[0], WAITS_PER_ROUND, f"{round_:02d}")
            start = clock.now()
            skip_risk = round_ % 3 == 2  # these waits are first seen already breached: no at-risk event
            if not skip_risk:
                clock.set(start + risk)
                emitted = race([w.scan_sla for w in racers])
                assert sum(emitted) == WAITS_PER_ROUND, f"round {round_}: {emitted}"
                expected.update(("sla.at_risk", c) for c in convs)
            clock.set(start + target)
            emitted = race([w.scan_sla for w in racers])
            assert sum(emitted) == WAITS_PER_ROUND, f"round {round_}: {emitted}"
            expected.update(("sla.breached", c) for c in convs)
            assert race([w.scan_sla for w in racers]) == [0, 0]  # nothing left to announce
        assert sla_events(racers[0]) == expected
        with racers[0].db.session() as s:
            unmarked = s.scalar(
                select(func.count())
                .select_from(SlaCycle)
                .where(SlaCycle.at_risk_emitted_at.is_(None) | SlaCycle.breached_emitted_at.is_(None))
            )
        assert unmarked == 0


def resolved(workflow: Workflow, n: int, tag: str) -> list[int]:
    """`n` conversations resolved (the status flip the resolve use case makes), none surveyed yet."""
    ids = open_waits(workflow, n, tag)
    now = workflow.clock.now()
    with workflow.db.session() as s:
        for conv in s.scalars(select(Conversation).where(Conversation.id.in_(ids))):
            conv.status, conv.resolved_at, conv.current_sla_id = "resolved", now, None
    return ids


def queue_one(workflow: Workflow, conversation_id: int) -> tuple[int, int]:
    ctx = workflow.ctx
    with ctx.db.session() as s:
        conv = s.get(Conversation, conversation_id)
        assert conv is not None
        survey, msg = queue_survey(ctx, s, conv, SurveyKind.csat, ctx.clock.now(), None)
        return survey.id, msg.id


def test_racing_survey_queues_make_one_survey_and_one_question_per_resolution(db_url, tmp_path, clock):
    with workers(db_url, tmp_path, clock) as racers:
        convs = []
        for round_ in range(ROUNDS):
            for conv_id in resolved(racers[0], 4, f"{round_:02d}"):
                convs.append(conv_id)
                got = race([partial(queue_one, w, conv_id) for w in racers])
                assert len(set(got)) == 1, f"the racers saw different surveys: {got}"
        with racers[0].db.session() as s:
            surveys = Counter(s.scalars(select(Survey.conversation_id)))
            questions = Counter(s.scalars(select(Message.conversation_id).where(Message.kind == "survey")))
        assert surveys == Counter(convs) and questions == Counter(convs)


def test_a_reopened_conversation_gets_a_survey_for_its_next_resolution(db_url, tmp_path, clock):
    with workers(db_url, tmp_path, clock) as racers:
        (conv_id,) = resolved(racers[0], 1, "77")
        first = queue_one(racers[0], conv_id)
        assert queue_one(racers[1], conv_id) == first  # the same resolution: the same survey
        clock.advance(hours=1)
        with racers[0].db.session() as s:
            conv = s.get(Conversation, conv_id)
            assert conv is not None
            conv.status, conv.opened_at = "open", clock.now()  # what a customer's new message does
        second = queue_one(racers[1], conv_id)
        assert second != first
        with racers[0].db.session() as s:
            assert s.scalar(select(func.count()).select_from(Survey)) == 2


def test_two_replicas_resolving_at_once_send_one_survey(db_url, tmp_path, clock):
    agent = Principal(key_id="k-agent", name="Ana", role=Role.agent)
    with workers(db_url, tmp_path, clock) as racers:
        for round_ in range(ROUNDS // 2):
            (conv_id,) = open_waits(racers[0], 1, f"5{round_}")

            def resolve(w: Workflow, c: int = conv_id) -> str:
                try:
                    w.resolve(c, ResolveRequest(), agent)
                except Conflict:
                    return "conflict"
                return "resolved"

            outcomes = race([partial(resolve, w) for w in racers])
            assert sorted(outcomes) == ["conflict", "resolved"]
        with racers[0].db.session() as s:
            per_conv = Counter(s.scalars(select(Survey.conversation_id)))
        assert len(per_conv) == ROUNDS // 2 and set(per_conv.values()) == {1}
