"""Draft schemas: what the LLM must return (`LLMReply`), what the API returns (`DraftsRead`) and asks
(`DraftCreate`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.tone.models import ToneFinding
from service.triage.models import TriageBase, TriageRead

MAX_DRAFTS = 3
MAX_DRAFT_CHARS = 600
MAX_PARAGRAPHS = 3
# Lower bound in the schema sent to the LLM (grammar-constrained servers enforce it). No upper bound there: a
# long
# draft is trimmed afterwards rather than re-asked, and llama.cpp's grammar for `maxLength: 1200` is too big
# to parse.
MIN_LLM_DRAFT_CHARS = 40
SNIPPET_FROM_BODY_CHARS = 600


class GroundingArticle(BaseModel):
    """An article as drafting sees it: the fields the prompt and the templates use."""

    model_config = ConfigDict(from_attributes=True)

    article_id: str
    title: str = ""
    url: str = ""
    summary: str = ""
    snippet: str = ""
    locale: str | None = Field(None, description="Locale of the article, when known.")


# -- what the LLM returns
# ---------------------------------------------------------------------------------------


class LLMReply(BaseModel):
    """The structured answer the draft prompt asks for. Its JSON schema is sent as `response_format`."""

    model_config = ConfigDict(extra="ignore")

    language: str = Field(description="ISO 639-1 code of the drafts, e.g. `es`.", min_length=2, max_length=8)
    drafts: list[Annotated[str, Field(min_length=MIN_LLM_DRAFT_CHARS)]] = Field(
        min_length=1,
        max_length=MAX_DRAFTS,
        description="1-3 alternative replies to the customer, plain text.",
    )
    cited_article_ids: list[str] = Field(
        default_factory=list, max_length=5, description="Ids of the help articles the drafts rely on."
    )
    needs_human: bool = Field(False, description="True when an agent must take over.")
    missing_info: list[str] = Field(
        default_factory=list, max_length=5, description="What the customer still has to tell us."
    )

    @field_validator("drafts")
    @classmethod
    def _non_empty_drafts(cls, v: list[str]) -> list[str]:
        if any(not d.strip() for d in v):
            raise ValueError("every draft must contain text")
        return v


class LLMHandoff(BaseModel):
    """The structured answer of the handoff prompt: a note for the agent who takes over."""

    model_config = ConfigDict(extra="ignore")

    wants: str = Field(min_length=3, max_length=300, description="What the customer wants, one sentence.")
    known: list[str] = Field(default_factory=list, max_length=8, description="Facts already known.")
    missing: list[str] = Field(default_factory=list, max_length=8, description="What is still missing.")


# -- what the API returns
# --------------------------------------------------------------------------------------


class Generator(StrEnum):
    llm = "llm"
    template = "template"


class SafetyFinding(BaseModel):
    """Something the link and claim checks removed from a draft, so the agent sees what and why."""

    rule: str = Field(
        description="`link_not_allowed`, `deceptive_link`, `ungrounded_contact`, `foreign_identifier`, "
        "`ungrounded_amount` or `ungrounded_claim`."
    )
    action: Literal["removed", "sentence_dropped"] = Field(
        description="`removed`: the link alone was taken out; `sentence_dropped`: its whole sentence was."
    )
    text: str = Field(
        description="What was taken out (identifiers of other customers masked to their last characters)."
    )
    reason: str = Field(description="Why, in words.")


class Draft(BaseModel):
    text: str = Field(description=f"Reply text, at most {MAX_DRAFT_CHARS} characters, plain text.")
    generator: Generator = Field(description="`llm` or `template`: what produced this draft.")
    cited_article_ids: list[str] = Field(
        default_factory=list, description="Help articles the draft relies on."
    )
    tone_findings: list[ToneFinding] = Field(
        default_factory=list, description="Tone check findings (none `block`)."
    )
    repairs: list[str] = Field(
        default_factory=list, description="What validation changed in an LLM draft (e.g. `trimmed`)."
    )
    safety_findings: list[SafetyFinding] = Field(
        default_factory=list,
        description="Links and claims the checks removed (disallowed links, contacts or amounts without a "
        "source, other customers' identifiers); empty when nothing was.",
    )


class HandoffSummary(BaseModel):
    wants: str = Field(description="What the customer wants.")
    known: list[str] = Field(
        default_factory=list, description="What is already known (order number, urgency...)."
    )
    missing: list[str] = Field(default_factory=list, description="What the agent still has to find out.")
    text: str = Field(description="The three parts as one short note for the agent.")
    generator: Generator


class DraftsRead(BaseModel):
    drafts: list[Draft] = Field(description="1-3 reply drafts in the customer's language, best first.")
    language: str = Field(description="ISO 639-1 code the drafts are written in.")
    needs_human: bool = Field(
        description="True when an agent must take over (intent, urgency or out of scope)."
    )
    missing_info: list[str] = Field(
        default_factory=list, description="Required slots of the intent the customer has not given yet."
    )
    handoff_summary: HandoffSummary | None = Field(None, description="Note for the agent when needs_human.")
    prompt_version: str = Field(
        description="Prompt (`system.v1+draft.v1`) or template (`templates.en.v1`) versions."
    )
    llm_outcome: str = Field(
        description="ok | not_configured | fallback:<reason> — why templates were used, if so."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "drafts": [
                        {
                            "text": "Hola, gracias por escribirnos. Para revisar su pedido, ¿podría "
                            "indicarnos el número de "
                            "pedido? Así le confirmamos el estado enseguida.",
                            "generator": "template",
                            "cited_article_ids": ["order-tracking-es"],
                            "tone_findings": [],
                            "repairs": [],
                        }
                    ],
                    "language": "es",
                    "needs_human": False,
                    "missing_info": ["order_number"],
                    "handoff_summary": None,
                    "prompt_version": "templates.es.v1",
                    "llm_outcome": "not_configured",
                }
            ]
        }
    )


# -- what POST /v1/drafts accepts
# ------------------------------------------------------------------------------


class DraftBase(TriageBase):
    article_ids: list[str] | None = Field(
        None,
        max_length=5,
        description="Ground the drafts in these articles; default: the knowledge base's top hits.",
    )
    triage: TriageRead | None = Field(
        None, description="A triage result to reuse; default: triage runs first."
    )


class DraftCreate(DraftBase):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": "Hi, where is my order? It was supposed to arrive yesterday.",
                    "locale": "en-GB",
                    "channel": "whatsapp",
                    "history": [],
                },
                {
                    "text": "Hola, quiero devolver unos zapatos del pedido #NW-48213",
                    "locale": "es-MX",
                    "article_ids": ["returns-es"],
                    "history": [{"role": "customer", "text": "Hola"}],
                },
            ]
        }
    )


def as_grounding(articles: list[Any]) -> list[GroundingArticle]:
    """Accept the knowledge base's search hits (`ArticleHit`), full articles (`ArticleRead`: `id` and `body`),
    `GroundingArticle`s or plain dicts of the same fields."""
    out = []
    for a in articles:
        if isinstance(a, GroundingArticle):
            out.append(a)
            continue
        data = (
            dict(a)
            if isinstance(a, dict)
            else {
                k: getattr(a, k)
                for k in ("article_id", "id", "title", "url", "summary", "snippet", "body", "locale")
                if hasattr(a, k)
            }
        )
        if "article_id" not in data and "id" in data:
            data["article_id"] = data["id"]
        if not data.get("snippet") and data.get("body"):
            data["snippet"] = str(data["body"])[:SNIPPET_FROM_BODY_CHARS]
        out.append(
            GroundingArticle.model_validate(
                {k: v for k, v in data.items() if k in GroundingArticle.model_fields}
            )
        )
    return out
