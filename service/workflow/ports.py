"""What the workflow calls out to: the message pipeline, the tone check and the context-fact lookup.

The container wires the real ones (`MessagePipeline`, `ToneChecker`, `ContextProviders`); tests pass small
typed fakes that implement these shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from service.pipeline.models import TriagePipelineRead
from service.tone.models import ToneCheckRead
from service.triage.models import TriageRequest
from service.workflow.models import ContextFact


class MessagePipelinePort(Protocol):
    """Triage + articles + drafts for one inbound message (`service.pipeline.MessagePipeline` implements
    it)."""

    def run(self, request: TriageRequest, *, facts: Sequence[ContextFact] = ()) -> TriagePipelineRead:
        """`facts`: context-provider facts about the message, handed to the drafter."""
        ...


ToneCheck = Callable[[str, str | None, dict[str, Any]], ToneCheckRead]
"""`(text, locale, context) -> ToneCheckRead` for a reply an agent is about to send."""

FactsLookup = Callable[[str, str | None], list[ContextFact]]
"""`(text, locale) -> facts` from the helpdesk's own systems (order status...)."""
