"""What the message pipeline returns: triage plus articles and drafts."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from service.drafting.models import DraftsRead
from service.kb.models import ArticleHit
from service.triage.models import TriageRead


class TriagePipelineRead(TriageRead):
    """Triage plus the articles found for the message and the reply drafts grounded in them."""

    articles: list[ArticleHit] = Field(
        default_factory=list,
        description="Top help articles: the intent's first when it is confident "
        "(REPLYDESK_KB_INTENT_MIN_CONFIDENCE), else the best of all articles.",
    )
    drafts: DraftsRead | None = Field(None, description="1–3 reply drafts in the customer's language.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **TriageRead.model_config["json_schema_extra"]["examples"][0],
                    "articles": ArticleHit.model_config["json_schema_extra"]["examples"],
                    "drafts": DraftsRead.model_config["json_schema_extra"]["examples"][0],
                }
            ]
        }
    )
