"""The labelled PII corpus (eval/data/pii/): its shape, and the held-out figures the redaction must keep.

The held-out file (test.jsonl) was written before the detection rules were tuned and was never tuned on; the
floors below sit a little under what `replydesk eval pii` measures on it (see README, "What is redacted before
an LLM call"). Both files were written by the same hands as the rules, so the figures are optimistic.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eval.pii import DEFAULT_FILES, PiiRun, evaluate, load_cases
from service.pii.models import PiiType
from service.settings import Settings
from service.tone.checker import ToneChecker

DEV, TEST = DEFAULT_FILES
LANGUAGES = {"en", "es", "de", "fr", "pt", "it", "nl"}

HELD_OUT_RECALL_FLOOR = 0.97  # measured 0.990 (1 of 102 spans missed)
HELD_OUT_PRECISION_FLOOR = 0.97  # measured 0.990
HELD_OUT_LEAK_CEILING = 0.03  # measured 0.0105: 2 of 190 LLM requests
HELD_OUT_NEGATIVES_FLAGGED_CEILING = 0.10  # measured 0.05: 1 of 20


@pytest.fixture(scope="module")
def held_out() -> Iterator[dict]:
    runner = PiiRun.build(Settings(llm_base_url=None), ToneChecker.from_path(None, default_locale="en"))
    try:
        yield evaluate(load_cases(TEST), runner)
    finally:
        runner.close()


def test_the_corpus_has_150_plus_messages_in_7_languages_with_every_type_and_negatives():
    dev, test = load_cases(DEV), load_cases(TEST)
    assert len(dev) + len(test) >= 150
    for cases in (dev, test):
        assert {c.lang for c in cases} == LANGUAGES
        assert {g.type for c in cases for g in c.gold} == set(PiiType)
        assert sum(c.negative for c in cases) >= 15
    assert not {c.id for c in dev} & {c.id for c in test}


def test_held_out_recall_stays_above_its_floor(held_out):
    assert held_out["recall"] >= HELD_OUT_RECALL_FLOOR, held_out["misses"]


def test_held_out_precision_and_false_alarms_on_negatives_stay_within_bounds(held_out):
    assert held_out["precision"] >= HELD_OUT_PRECISION_FLOOR, held_out["false_alarms"]
    assert held_out["negatives_flagged"] <= HELD_OUT_NEGATIVES_FLAGGED_CEILING, held_out["false_alarms"]


def test_held_out_llm_requests_with_any_labelled_value_stay_under_the_ceiling(held_out):
    assert held_out["llm_requests"] == 2 * held_out["messages"]  # the draft and the handoff prompt each
    assert held_out["leak_rate"] <= HELD_OUT_LEAK_CEILING, held_out["leaks"]


def test_no_held_out_draft_shows_a_card_or_an_iban(held_out):
    assert held_out["drafts"] > 0 and held_out["drafts_payment_data_in_clear"] == 0
