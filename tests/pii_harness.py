"""Test support for the PII tests: the real Drafter with an LLM whose HTTP transport is answered in-process
(`eval.pii.RecordingLLM`, the same fake the `eval pii` figures come from), and what its requests carried."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eval.pii import PiiRun, fold, value_pattern
from service.drafting.models import DraftsRead
from service.triage.models import HistoryMessage
from tests.test_drafting_templates import make_triage


def ask(
    run: PiiRun,
    text: str,
    *,
    language: str = "en",
    locale: str | None = None,
    country: str | None = None,
    name: str | None = None,
    history: Sequence[HistoryMessage] = (),
    facts: Sequence[Any] = (),
) -> tuple[str, DraftsRead]:
    """Draft a reply (an intent that needs a human: the draft and the handoff prompt are both sent); returns
    everything the LLM was sent, as it reads it, and the result."""
    run.llm.requests.clear()
    run.llm.language = language
    triage = make_triage(language, "order_status", automatable=False, text=text)
    result = run.drafter.draft(text, triage, [], history, locale, facts, country=country, customer_name=name)
    assert [r["messages"][0]["role"] for r in run.llm.requests] == ["system", "system"]
    sent = "\n".join(str(m["content"]) for body in run.llm.requests for m in body["messages"])
    return sent, result


def reaches(value: str, sent: str) -> bool:
    """`value` is in `sent`, however its characters are separated, cased or accented (eval.pii's rule)."""
    pattern = value_pattern(value)
    assert pattern is not None
    return bool(pattern.search(fold(sent)))
