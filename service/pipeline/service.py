"""`MessagePipeline`: triage → articles → drafts for one message, built from the three components it needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from service.kb.for_triage import suggest_for_triage
from service.pipeline.models import TriagePipelineRead
from service.triage.models import TriageRequest

if TYPE_CHECKING:
    from service.drafting.drafter import Drafter
    from service.kb.service import KnowledgeBase
    from service.triage.service import TriageService


class MessagePipeline:
    """One message in, every signal out: the same result for `POST /v1/triage`, `replydesk triage` and
    ingest."""

    def __init__(self, triage: TriageService, kb: KnowledgeBase, drafter: Drafter) -> None:
        self.triage = triage
        self.kb = kb
        self.drafter = drafter

    def run(
        self, request: TriageRequest, *, facts: Sequence[Any] = (), drafts: bool = True
    ) -> TriagePipelineRead:
        """`facts`: context-provider facts about the message (e.g. the order's status), given to the
        drafter."""
        triage, vector = self.triage.triage_with_embedding(request)
        articles = suggest_for_triage(self.kb, request.text, request.locale, triage, vector)
        drafted = (
            self.drafter.draft(
                request.text,
                triage,
                articles,
                request.history,
                request.locale,
                facts,
                country=request.country,
                customer_name=request.customer_name,
            )
            if drafts
            else None
        )
        return TriagePipelineRead(**triage.model_dump(), articles=articles, drafts=drafted)
