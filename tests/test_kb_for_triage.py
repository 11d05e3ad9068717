"""Which articles a triaged message gets: its intent's first only when the intent is confident."""

from __future__ import annotations

import pytest

from service.kb.for_triage import article_intent, suggest_for_triage
from service.triage.models import TriageRead

EXAMPLE = TriageRead.model_config["json_schema_extra"]["examples"][0]


def _triaged(name: str, confidence: float, *, out_of_scope: bool = False, language: str = "en") -> TriageRead:
    data = {
        **EXAMPLE,
        "language": {"code": language, "confidence": 0.99, "source": "text"},
        "intent": {
            "name": name,
            "confidence": confidence,
            "out_of_scope": out_of_scope,
            "alternatives": [{"name": "shipping_info" if out_of_scope else name, "confidence": confidence}],
        },
    }
    return TriageRead.model_validate(data)


@pytest.mark.parametrize(
    ("name", "confidence", "out_of_scope", "expected"),
    [
        ("shipping_info", 0.91, False, "shipping_info"),
        ("shipping_info", 0.50, False, "shipping_info"),
        ("shipping_info", 0.33, False, None),  # unsure: every article competes
        ("out_of_scope", 0.90, True, None),
    ],
)
def test_only_a_confident_intent_puts_its_articles_first(name, confidence, out_of_scope, expected):
    assert (
        article_intent(_triaged(name, confidence, out_of_scope=out_of_scope), min_confidence=0.5) == expected
    )


def test_an_unsure_intent_does_not_hide_the_article_the_message_asks_about(app):
    container = app.state.container
    container.kb.reindex()
    text = "Do you have gift cards and can I pay with one online?"
    # a confident shipping intent restricts the search to shipping articles...
    confident = suggest_for_triage(container.kb, text, "en-US", _triaged("shipping_info", 0.9))
    assert confident and "gift-cards" not in [h.article_id for h in confident]
    # ...an unsure one (0.33, as the classifier gives this message) leaves the gift-card article on top
    unsure = suggest_for_triage(container.kb, text, "en-US", _triaged("shipping_info", 0.33))
    assert unsure[0].article_id == "gift-cards"
    assert len(unsure) == container.settings.kb_top_k
