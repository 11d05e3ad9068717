"""Typed helpers for sessions: a row that must exist, and the row count of a conditional UPDATE."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Executable
from sqlalchemy.orm import Session

T = TypeVar("T")


def get_row(s: Session, model: type[T], ident: Any) -> T:
    """`s.get(model, ident)` for a row that a foreign key or an earlier step guarantees; LookupError if
    gone."""
    row = s.get(model, ident)
    if row is None:
        raise LookupError(f"no {getattr(model, '__tablename__', model.__name__)} row {ident!r}")
    return row


def changed(s: Session, stmt: Executable) -> int:
    """How many rows a (conditional) UPDATE changed: 1 means this caller won the compare-and-set."""
    return cast(CursorResult[Any], s.execute(stmt)).rowcount
