"""What the message pipeline returns: triage plus articles and drafts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.drafting.models import DraftsRead
from service.kb.models import ArticleHit
from service.triage.models import TriageRead


def schema_examples(model: type[BaseModel]) -> list[Any]:
    """The `examples` a model declares in its `json_schema_extra` (a dict in every ReplyDesk schema)."""
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict), f"{model.__name__} declares no examples"
    examples = extra["examples"]
    assert isinstance(examples, list)
    return examples


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
                    **schema_examples(TriageRead)[0],
                    "articles": schema_examples(ArticleHit),
                    "drafts": schema_examples(DraftsRead)[0],
                }
            ]
        }
    )
