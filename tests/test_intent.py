"""Intent classifier: right intents across languages, out of scope, calibrated probabilities, caching, custom
taxonomy.

Runs the real bundled embedding model and the real training code (the bundled taxonomy trains in seconds and
is cached on disk, so later runs load it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.embeddings import Embedder, get_embedder
from service.errors import InvalidInput
from service.settings import REPO_ROOT, Settings
from service.triage.intent import (
    IntentClassifier,
    cv_splits,
    expected_calibration_error,
    oos_margins,
    tune_oos_margin,
)
from service.triage.taxonomy import OUT_OF_SCOPE

DEV_SET = REPO_ROOT / "eval" / "data" / "intents_dev.jsonl"


@pytest.fixture(scope="module")
def embedder(settings: Settings) -> Embedder:
    return get_embedder(settings.embedding_model, settings.resolved_cache_dir / "embeddings")


@pytest.fixture(scope="module")
def classifier(settings: Settings, embedder: Embedder) -> IntentClassifier:
    return IntentClassifier.from_settings(settings, embedder)


TOY_ROWS = [
    ("where is my parcel", "track"),
    ("track my order please", "track"),
    ("has my package shipped", "track"),
    ("tracking number for my order", "track"),
    ("when does my parcel arrive", "track"),
    ("send me an invoice", "bill"),
    ("i need a receipt", "bill"),
    ("vat invoice for my company", "bill"),
    ("can i get a copy of the bill", "bill"),
    ("invoice with my tax id", "bill"),
    ("hello", "hi"),
    ("hi there", "hi"),
    ("good morning", "hi"),
    ("hey", "hi"),
    ("hiya", "hi"),
]


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("where's my order #NW-10233? it hasn't shipped yet", "order_status"),
        ("my parcel is two weeks late, still nothing", "delivery_delay"),
        ("I was charged twice for the same order", "charged_twice"),
        ("there is a payment on my card I never made", "unauthorized_charge"),
        ("someone hacked my account and changed the password", "hacked_account"),
        ("i forgot my password and can't log in", "account_access"),
        ("I need to move my repair appointment to Friday", "reschedule_appointment"),
        ("can I book a fitting for saturday?", "book_appointment"),
        ("quiero devolver estos zapatos, no me quedan", "return_item"),
        ("ich möchte meine Bestellung stornieren", "cancel_order"),
        ("mon colis est arrivé cassé", "damaged_item"),
        ("quero falar com um atendente humano", "talk_to_human"),
        ("thanks a lot, that's all!", "thanks"),
    ],
)
def test_clear_messages_get_the_right_intent_in_several_languages(classifier: IntentClassifier, text, intent):
    result = classifier.predict(text)
    assert result.name == intent, result
    assert result.out_of_scope is False
    assert result.alternatives[0].name == intent


@pytest.mark.parametrize(
    "text", ["what's the capital of Peru", "how do I bake sourdough bread", "who won the world cup in 1998"]
)
def test_unrelated_questions_are_out_of_scope_with_alternatives_still_listed(
    classifier: IntentClassifier, text
):
    result = classifier.predict(text)
    assert result.name == OUT_OF_SCOPE
    assert result.out_of_scope is True
    assert len(result.alternatives) == 3
    assert all(a.name != OUT_OF_SCOPE for a in result.alternatives)


def test_probabilities_sum_to_one_and_alternatives_are_ordered_by_confidence(classifier: IntentClassifier):
    texts = ["my card was declined at checkout", "hola", "do you ship to canada?"]
    probs = classifier.proba(texts)
    assert probs.shape == (3, len(classifier.classes))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    for intent, row in zip(classifier.predict_batch(texts), probs, strict=True):
        confs = [a.confidence for a in intent.alternatives]
        assert confs == sorted(confs, reverse=True)
        assert intent.confidence == pytest.approx(float(row.max()), abs=1e-3)
        assert 0.0 <= intent.confidence <= 1.0


def test_passing_the_embedding_gives_the_same_answer_as_embedding_inside(classifier, embedder):
    text = "can i get a refund? returned it 2 weeks ago"
    vec = embedder.encode([text])[0]
    assert classifier.predict(text, embedding=vec) == classifier.predict(text)


def test_bundled_classifier_reaches_a_floor_on_the_held_out_dev_messages(classifier: IntentClassifier):
    rows = [json.loads(line) for line in DEV_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) >= 100
    preds = classifier.predict_batch([r["text"] for r in rows])
    accuracy = np.mean([p.name == r["label"] for p, r in zip(preds, rows, strict=True)])
    assert accuracy >= 0.85, f"dev accuracy {accuracy:.3f}"
    oos = [p.name == OUT_OF_SCOPE for p, r in zip(preds, rows, strict=True) if r["label"] == OUT_OF_SCOPE]
    assert np.mean(oos) >= 0.7


def test_describe_reports_size_kind_hash_and_calibration(classifier: IntentClassifier):
    info = classifier.describe()
    assert info["n_intents"] == 27
    assert info["taxonomy_hash"] == classifier.taxonomy.content_hash
    assert "logreg" in info["classifier"]
    assert 0.0 <= info["ece"] < 0.15
    assert 0.0 <= info["oos_threshold"] < 1.0


def test_second_training_on_the_same_data_is_a_cache_hit(tmp_path: Path, embedder: Embedder):
    texts, labels = zip(*TOY_ROWS, strict=True)
    first = IntentClassifier(embedder, cache_dir=tmp_path).fit(texts, labels)
    second = IntentClassifier(embedder, cache_dir=tmp_path).fit(texts, labels)
    assert first.loaded_from_cache is False
    assert second.loaded_from_cache is True
    assert len(list(tmp_path.glob("*.joblib"))) == 1
    assert second.predict("where is my parcel?") == first.predict("where is my parcel?")
    changed = IntentClassifier(embedder, cache_dir=tmp_path).fit([*texts, "yo"], [*labels, "hi"])
    assert changed.loaded_from_cache is False


def test_custom_taxonomy_from_settings_intents_path(tmp_path: Path, settings: Settings, embedder: Embedder):
    path = tmp_path / "custom.jsonl"
    rows = [
        *TOY_ROWS,
        ("tell me a joke", "oos"),
        ("what's the weather", "oos"),
        ("who is the president", "oos"),
    ]
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    custom = IntentClassifier.from_settings(settings.model_copy(update={"intents_path": path}), embedder)
    assert set(custom.taxonomy.intents) == {"track", "bill", "hi"}
    assert set(custom.classes) == {"track", "bill", "hi", OUT_OF_SCOPE}
    assert custom.predict("has my order shipped yet?").name == "track"
    assert custom.predict("please email me the invoice").name == "bill"
    assert custom.describe()["oos_class"] is True


def test_oos_threshold_setting_overrides_the_tuned_threshold(
    settings: Settings, embedder: Embedder, classifier: IntentClassifier
):
    text = "the thing i bought is not great"
    before = classifier.predict(text)
    assert before.out_of_scope is False
    threshold = before.confidence + 0.01
    strict = IntentClassifier.from_settings(
        settings.model_copy(update={"oos_threshold": threshold}), embedder
    )
    assert strict.oos_threshold == threshold
    after = strict.predict(text)
    assert after.out_of_scope is True
    assert after.name == OUT_OF_SCOPE
    assert after.confidence == pytest.approx(1 - before.confidence, abs=1e-3)
    assert after.alternatives == before.alternatives


def test_training_needs_two_intents_with_two_examples_each(embedder: Embedder):
    clf = IntentClassifier(embedder)
    with pytest.raises(InvalidInput, match="at least 2 intents"):
        clf.fit(["a", "b"], ["x", "x"])
    with pytest.raises(InvalidInput, match="at least 2 examples"):
        clf.fit(["a", "b", "c"], ["x", "x", "y"])


def test_expected_calibration_error_is_zero_when_confidence_matches_accuracy():
    conf = np.array([0.8] * 10)
    assert expected_calibration_error(conf, np.array([1] * 8 + [0] * 2)) == pytest.approx(0.0)
    assert expected_calibration_error(conf, np.array([1] * 10)) == pytest.approx(0.2)


def test_single_message_fast_path_matches_the_batch_computation(
    classifier: IntentClassifier, embedder: Embedder
):
    texts = ["hi, any update on my order #NW-48213?", "ÀÉÎ 123", "zzzzqqq", "¿dónde está mi reembolso?"]
    vectors = embedder.encode(texts)
    batch = classifier.proba(texts, vectors)
    single = np.vstack([classifier.proba([t], vectors[i : i + 1]) for i, t in enumerate(texts)])
    np.testing.assert_allclose(single, batch, atol=1e-5)


def test_cross_validation_holds_out_whole_topics_of_out_of_scope_examples():
    # Out-of-scope messages in production are mostly about topics no training example covers, so each fold
    # must
    # hold out OOS examples of topics the fold model never saw: 5 well-separated topics -> one topic per fold.
    rng = np.random.default_rng(0)
    topics = np.repeat(np.arange(5), 8)
    centres = np.eye(16)[:5] * 10
    oos_emb = centres[topics] + rng.normal(scale=0.1, size=(40, 16))
    in_y = np.repeat(np.arange(3), 10)  # three intents, 10 examples each; the OOS class is label 3
    y = np.concatenate([in_y, np.full(40, 3)])
    emb = np.vstack([rng.normal(size=(30, 16)), oos_emb])
    folds = cv_splits(y, emb, oos_idx=3, folds=5)
    assert len(folds) == 5
    held_out = np.concatenate([te for _, te in folds])
    assert sorted(held_out.tolist()) == list(range(len(y)))  # every row held out exactly once
    for train, test in folds:
        oos_test_topics = {int(topics[i - 30]) for i in test if y[i] == 3}
        oos_train_topics = {int(topics[i - 30]) for i in train if y[i] == 3}
        assert len(oos_test_topics) == 1 and not oos_test_topics & oos_train_topics
        assert np.bincount(y[test][y[test] != 3], minlength=3).tolist() == [
            2,
            2,
            2,
        ]  # intents stay stratified


def _probs(best: float, p_oos: float, n_classes: int, oos_idx: int, best_idx: int = 0) -> np.ndarray:
    """A probability row: `best` on `best_idx`, `p_oos` on the OOS column, the rest spread evenly (each below
    best)."""
    p = np.full(n_classes, (1.0 - best - p_oos) / (n_classes - 2))
    p[best_idx], p[oos_idx] = best, p_oos
    return p


def test_margin_tuning_takes_the_lowest_margin_that_reaches_the_recall_target():
    # 4 in-scope rows of intent 0 and 4 out-of-scope rows (class 2), each row with a given margin of intent 0
    # over
    # the OOS class: p(0) = 0.9 / (1 + e^-m), p(OOS) = 0.9 e^-m / (1 + e^-m), p(1) = 0.1
    y = np.array([0, 0, 0, 0, 2, 2, 2, 2])
    wanted = np.array([6, 5, 4, 3.02, 3.53, 2.03, 1.03, -1])
    odds = np.exp(-wanted)
    probs = np.column_stack([0.9 / (1 + odds), np.full(8, 0.1), 0.9 * odds / (1 + odds)])
    np.testing.assert_allclose(oos_margins(probs[:, 0], probs[:, 2]), wanted, atol=1e-9)
    # catching 3 of 4 OOS rows needs a margin above 2.03: the lowest on the grid is 2.05, and no in-scope row
    # is lost
    margin, rule, _ = tune_oos_margin(probs, y, oos_idx=2, recall_target=0.75)
    assert margin == pytest.approx(2.05) and "lowest margin" in rule
    # catching all 4 needs more than 3.53, which turns away 1 of the 4 in-scope rows classified right: allowed
    # when a quarter may be lost...
    margin, _, curve = tune_oos_margin(probs, y, oos_idx=2, recall_target=1.0, max_lost=0.25)
    assert margin == pytest.approx(3.55)
    assert all({"margin", "in_scope_accuracy", "oos_recall", "lost"} <= set(point) for point in curve)
    # ...but not under a budget of 5 %: then the highest margin that loses none of them (3.02 stays in)
    margin, rule, _ = tune_oos_margin(probs, y, oos_idx=2, recall_target=1.0, max_lost=0.05)
    assert margin == pytest.approx(3.0) and "at most 0.05" in rule
    # without out-of-scope examples there is no class to weigh against: no margin, nothing rejected
    assert tune_oos_margin(probs[:4], y[:4], oos_idx=2)[0] is None


def test_out_of_scope_is_decided_by_the_margin_over_the_oos_class_not_by_confidence_alone(
    classifier: IntentClassifier,
):
    classes = classifier.classes
    oos_idx, best_idx = classes.index(OUT_OF_SCOPE), classes.index("order_status")
    margin = classifier.oos_margin
    assert margin is not None and classifier.oos_threshold == 0.0
    # a spread-out message (best intent only 0.3) that looks nothing like the out-of-scope examples stays in
    # scope
    spread = classifier.decide(_probs(0.3, 0.3 * np.exp(-margin - 1), len(classes), oos_idx, best_idx))
    assert spread.name == "order_status" and spread.out_of_scope is False
    assert spread.confidence == pytest.approx(0.3, abs=1e-4)
    # a confident-looking best intent that barely beats the out-of-scope class is out of scope
    # (best ≤ 0.4, small enough that best + p(out of scope) stays a probability whatever margin was tuned)
    best = float(min(0.4, 0.9 / (1 + np.exp(-margin + 0.25))))
    p_oos = best * np.exp(-margin + 0.25)
    close = classifier.decide(_probs(best, p_oos, len(classes), oos_idx, best_idx))
    assert close.out_of_scope is True and close.name == OUT_OF_SCOPE
    # 1 - p(best intent), or p(out of scope) when that class is on top
    assert close.confidence == pytest.approx(p_oos if p_oos > best else 1 - best, abs=1e-4)
    assert close.alternatives[0].name == "order_status"
    # the out-of-scope class on top: its own probability is the confidence
    top = classifier.decide(_probs(0.1, 0.85, len(classes), oos_idx, best_idx))
    assert top.out_of_scope is True and top.confidence == pytest.approx(0.85, abs=1e-4)
