"""Database sink for LLM call records (`llm_calls` table): register with
`LLMClient.add_sink(container.llm_call_sink)`.

Accepts the drafting capability's `LLMCallLog` or any object/dict with the same fields (model, prompt_name,
prompt_version, prompt_tokens, completion_tokens, latency_ms, outcome, error, created_at).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from service.clock import Clock, ensure_utc
from service.db.engine import Database
from service.db.models import LLMCall

log = logging.getLogger("replydesk.llm_calls")

_KNOWN = {
    "model",
    "prompt_name",
    "prompt_version",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "latency_ms",
    "outcome",
    "error",
    "created_at",
    "conversation_id",
    "message_id",
}


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else getattr(record, name, None)


class LLMCallSink:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def __call__(self, record: Any) -> None:
        """Store one call. Never raises (a sink must not break drafting): storage errors are logged."""
        created = _field(record, "created_at")
        prompt_tokens = _field(record, "prompt_tokens")
        completion_tokens = _field(record, "completion_tokens")
        total = _field(record, "total_tokens")
        if total is None and prompt_tokens is not None and completion_tokens is not None:
            total = prompt_tokens + completion_tokens
        if isinstance(record, dict):
            extra = {k: v for k, v in record.items() if k not in _KNOWN}
        else:
            extra = (
                {k: v for k, v in vars(record).items() if k not in _KNOWN}
                if hasattr(record, "__dict__")
                else {}
            )
        row = LLMCall(
            created_at=ensure_utc(created) if isinstance(created, datetime) else self.clock.now(),
            model=str(_field(record, "model") or "")[:200],
            prompt_name=_field(record, "prompt_name") or None,
            prompt_version=_field(record, "prompt_version") or None,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=total,
            latency_ms=_field(record, "latency_ms"),
            outcome=str(_field(record, "outcome") or "unknown")[:100],
            error=_field(record, "error"),
            conversation_id=_field(record, "conversation_id"),
            message_id=_field(record, "message_id"),
            details={
                k: v if isinstance(v, str | int | float | bool | None) else str(v) for k, v in extra.items()
            },
        )
        try:
            with self.db.session() as s:
                s.add(row)
        except SQLAlchemyError as exc:
            log.warning("could not store LLM call", extra={"error": str(exc)})

    def recent(self, limit: int = 100) -> list[LLMCall]:
        with self.db.session() as s:
            return list(s.scalars(select(LLMCall).order_by(LLMCall.id.desc()).limit(limit)))
