"""SLA targets per urgency, optional business hours, the state of a customer's wait (ok / at_risk /
breached), and the scan that announces each wait's risk and breach exactly once (`scan_sla`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.clock import ensure_utc
from service.db.models import Conversation, Event, SlaCycle
from service.errors import InvalidInput
from service.settings import Settings
from service.triage.models import UrgencyLevel
from service.workflow.models import SlaKind, SlaState

if TYPE_CHECKING:
    from service.workflow.context import WorkflowContext

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
URGENCY_RANK = {UrgencyLevel.critical: 0, UrgencyLevel.high: 1, UrgencyLevel.normal: 2, UrgencyLevel.low: 3}
STATE_RANK = {SlaState.breached: 0, SlaState.at_risk: 1, SlaState.ok: 2}
_SEGMENT = re.compile(
    r"^\s*(?P<days>[a-z]{3}(?:\s*-\s*[a-z]{3})?(?:\s*,\s*[a-z]{3}(?:\s*-\s*[a-z]{3})?)*)\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


def _days(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        bounds = [p.strip() for p in part.split("-")]
        if any(b not in DAYS for b in bounds):
            raise InvalidInput(f"unknown day in business hours: {part.strip()!r} (use mon..sun)")
        a, b = DAYS.index(bounds[0]), DAYS.index(bounds[-1])
        out.extend(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return out


@dataclass(frozen=True)
class BusinessHours:
    """Opening windows per weekday in one time zone, e.g. `mon-fri 09:00-18:00; sat 10:00-14:00`."""

    windows: dict[int, tuple[tuple[time, time], ...]]
    tz: ZoneInfo

    @classmethod
    def parse(cls, spec: str, tz_name: str = "UTC") -> BusinessHours:
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(f"unknown time zone {tz_name!r}") from exc
        windows: dict[int, list[tuple[time, time]]] = {}
        for segment in filter(None, (s.strip() for s in spec.lower().split(";"))):
            m = _SEGMENT.match(segment)
            if not m:
                raise InvalidInput(f"business hours segment {segment!r} is not like `mon-fri 09:00-18:00`")
            try:
                start, end = time.fromisoformat(m["start"].zfill(5)), time.fromisoformat(m["end"].zfill(5))
            except ValueError as exc:
                raise InvalidInput(f"bad time in business hours segment {segment!r}") from exc
            if end <= start:
                raise InvalidInput(f"business hours segment {segment!r} ends before it starts")
            for d in _days(m["days"]):
                windows.setdefault(d, []).append((start, end))
        if not windows:
            raise InvalidInput("business hours are empty")
        return cls({d: tuple(sorted(w)) for d, w in windows.items()}, tz)

    def _day_windows(self, day: datetime) -> list[tuple[datetime, datetime]]:
        out = []
        for start, end in self.windows.get(day.weekday(), ()):
            out.append(
                (datetime.combine(day.date(), start, self.tz), datetime.combine(day.date(), end, self.tz))
            )
        return out

    def add(self, start: datetime, minutes: float) -> datetime:
        """The moment `minutes` of open time after `start`."""
        t = ensure_utc(start).astimezone(self.tz)
        remaining = timedelta(minutes=minutes)
        for _ in range(800):  # ~2 years of days: enough for any target; guards an endless loop
            for ws, we in self._day_windows(t):
                if t >= we:
                    continue
                s = max(t, ws)
                if remaining <= we - s:
                    return ensure_utc(s + remaining)
                remaining -= we - s
                t = we
            t = datetime.combine((t + timedelta(days=1)).date(), time(0), self.tz)
        raise InvalidInput("business hours leave no open time")

    def open_minutes(self, start: datetime, end: datetime) -> float:
        """Open time between two moments, in minutes."""
        t, end = ensure_utc(start).astimezone(self.tz), ensure_utc(end).astimezone(self.tz)
        total = timedelta()
        while t < end:
            for ws, we in self._day_windows(t):
                s, e = max(t, ws), min(end, we)
                if e > s:
                    total += e - s
            t = datetime.combine((t + timedelta(days=1)).date(), time(0), self.tz)
        return total.total_seconds() / 60


class SlaPolicy:
    def __init__(
        self,
        first: dict[str, float],
        nxt: dict[str, float],
        at_risk_ratio: float,
        hours: BusinessHours | None = None,
    ) -> None:
        self.targets = {
            SlaKind.first_response: self._check(first, "first"),
            SlaKind.next_response: self._check(nxt, "next"),
        }
        self.at_risk_ratio = at_risk_ratio
        self.hours = hours

    @staticmethod
    def _check(targets: dict[str, float], which: str) -> dict[UrgencyLevel, float]:
        out: dict[UrgencyLevel, float] = {}
        for level in UrgencyLevel:
            value = targets.get(level.value)
            if value is None or value <= 0:
                raise InvalidInput(
                    f"SLA {which}-response target for urgency {level.value!r} is missing or not > 0"
                )
            out[level] = float(value)
        return out

    @classmethod
    def from_settings(cls, settings: Settings) -> SlaPolicy:
        hours = (
            BusinessHours.parse(settings.business_hours, settings.business_timezone)
            if settings.business_hours
            else None
        )
        return cls(
            settings.sla_first_response_minutes,
            settings.sla_next_response_minutes,
            settings.sla_at_risk_ratio,
            hours,
        )

    def target_minutes(self, kind: SlaKind, urgency: UrgencyLevel) -> float:
        return self.targets[kind][urgency]

    def _after(self, start: datetime, minutes: float) -> datetime:
        return (
            self.hours.add(start, minutes) if self.hours else ensure_utc(start) + timedelta(minutes=minutes)
        )

    def schedule(
        self, kind: SlaKind, urgency: UrgencyLevel, started_at: datetime
    ) -> tuple[datetime, datetime]:
        """(at_risk_at, due_at) of a wait that started at `started_at`."""
        minutes = self.target_minutes(kind, urgency)
        return self._after(started_at, minutes * self.at_risk_ratio), self._after(started_at, minutes)

    def elapsed_ratio(
        self, kind: SlaKind, urgency: UrgencyLevel, started_at: datetime, now: datetime
    ) -> float:
        target = self.target_minutes(kind, urgency)
        if self.hours:
            used = self.hours.open_minutes(started_at, now)
        else:
            used = (ensure_utc(now) - ensure_utc(started_at)).total_seconds() / 60
        return round(max(0.0, used / target), 4)

    @staticmethod
    def state(at_risk_at: datetime, due_at: datetime, now: datetime) -> SlaState:
        if now >= due_at:
            return SlaState.breached
        if now >= at_risk_at:
            return SlaState.at_risk
        return SlaState.ok


# -- announcing: `sla.at_risk` / `sla.breached` exactly once per wait, whatever the number of workers --------


def scan_sla(ctx: WorkflowContext) -> int:
    """Emit `sla.at_risk` and `sla.breached` once per wait (the worker's job; never done by a read), however
    many worker processes scan at the same moment. Returns how many events this caller emitted.

    The claim is the event's unique `dedupe_key` (`sla:<cycle id>:at_risk|breached`): each announcement is
    INSERTed in a SAVEPOINT, and a unique violation on that key means another worker announced it first (its
    insert waited for, or lost to, the other's commit on PostgreSQL; SQLite serialises writers). Nothing is
    checked first and inserted after. The cycle's `*_emitted_at` marks (set in the same transaction) only keep
    later scans from looking at a wait again. Cycles are taken in id order, so two scans lock their rows in
    the same order (no deadlock). A wait already breached when first seen gets its at-risk mark without an
    `sla.at_risk` event."""
    now = ctx.clock.now()
    emitted = 0
    with ctx.db.session() as s:
        due = s.execute(
            select(SlaCycle, Conversation.id)
            .join(Conversation, Conversation.current_sla_id == SlaCycle.id)
            .where(
                SlaCycle.responded_at.is_(None),
                or_(
                    (SlaCycle.at_risk_emitted_at.is_(None) & (SlaCycle.at_risk_at <= now)),
                    (SlaCycle.breached_emitted_at.is_(None) & (SlaCycle.due_at <= now)),
                ),
            )
            .order_by(SlaCycle.id)
        ).all()
        for cycle, conversation_id in due:
            breached = now >= cycle.due_at
            marks = []
            if cycle.at_risk_emitted_at is None:
                marks.append(("at_risk", SlaCycle.at_risk_emitted_at, not breached))
            if breached and cycle.breached_emitted_at is None:
                marks.append(("breached", SlaCycle.breached_emitted_at, True))
            for name, column, announce in marks:
                # the mark first: it opens the write transaction, so the announcement's SAVEPOINT nests in it
                # on SQLite too (pysqlite begins a transaction at the first write; a SAVEPOINT outside one
                # would commit on release)
                s.execute(
                    update(SlaCycle)
                    .where(SlaCycle.id == cycle.id, column.is_(None))
                    .values({column.key: now})
                )
                if not announce:
                    continue
                key = f"sla:{cycle.id}:{name}"
                with first_insert(s, key) as claim:
                    ctx.events.emit(
                        s,
                        f"sla.{name}",
                        {
                            "conversation_id": conversation_id,
                            "kind": cycle.kind,
                            "urgency": cycle.urgency,
                            "started_at": cycle.started_at.isoformat(),
                            "due_at": cycle.due_at.isoformat(),
                        },
                        now=now,
                        conversation_id=conversation_id,
                        message_id=cycle.message_id,
                        dedupe_key=key,
                    )
                emitted += claim.won
    return emitted


@dataclass
class Claim:
    won: bool = False


@contextmanager
def first_insert(s: Session, dedupe_key: str) -> Iterator[Claim]:
    """Run the body (an `emit(..., dedupe_key=...)`) in a SAVEPOINT; `won` when its insert went in. A unique
    violation of an event with that key means another process inserted it first: the savepoint is rolled
    back and the violation swallowed. Any other integrity error is raised."""
    claim = Claim()
    try:
        with s.begin_nested():
            yield claim
        claim.won = True
    except IntegrityError:
        if s.scalar(select(Event.id).where(Event.dedupe_key == dedupe_key)) is None:
            raise
