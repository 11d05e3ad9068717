"""Language routes: a language can read one part of the combined embedding model
(`REPLYDESK_EMBEDDING_ROUTES`, English on MiniLM by default), so English keeps the MiniLM model's figures
while other languages read the pair.

- a routed message is embedded by its part only and classified by intents trained on that part;
- its vector, placed in the combined model's space, ranks the combined article index exactly as the part alone
  would rank an index of its own vectors;
- routes apply to combined models only, and a route to a model that is not a part stops the start.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from service.embeddings import MINILM, USE_V3, ConcatEmbedder, language_routes
from service.settings import Settings
from service.triage.models import TriageRequest


class HashingPart:
    """A small embedding model (hashed words, L2-normalised) that counts the texts it encodes: the contract of
    the embedding seam, `service.embeddings.Embedder`."""

    def __init__(self, model_id: str, dimension: int, salt: str) -> None:
        self.model_id = model_id
        self.dimension = dimension
        self.salt = salt
        self.encoded: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded.extend(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.sha256((self.salt + word).encode()).hexdigest(), 16) % self.dimension] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


DOCS = [
    "reset your password from the sign in page",
    "track a parcel with its tracking number",
    "cancel an order before it ships",
    "refund to the card you paid with",
    "change the delivery address of an order",
]


def _pair() -> tuple[ConcatEmbedder, HashingPart, HashingPart]:
    english, multilingual = HashingPart("english", 32, "a"), HashingPart("multilingual", 48, "b")
    return ConcatEmbedder([english, multilingual], ["english", "multilingual"]), english, multilingual


def test_a_routed_query_ranks_the_combined_index_as_its_part_alone_ranks_its_own_vectors():
    pair, english, _ = _pair()
    route = language_routes(pair, {"en": "english"})["en"]
    index = pair.encode(DOCS)  # the combined article index
    for query in ["how do I reset my password", "where is my parcel", "I want a refund on my card"]:
        part_vector = route.embedder.encode([query])[0]
        combined_scores = index @ route.to_index_space(part_vector)
        own_scores = english.encode(DOCS) @ part_vector
        assert list(np.argsort(-combined_scores, kind="stable")) == list(
            np.argsort(-own_scores, kind="stable")
        )
        # every score is the part's cosine times one constant (1/sqrt(2) for two parts)
        np.testing.assert_allclose(combined_scores, own_scores / np.sqrt(2), atol=1e-6)


def test_a_routed_vector_keeps_unit_length_and_the_combined_dimension():
    pair, _, _ = _pair()
    route = language_routes(pair, {"en": "english"})["en"]
    vectors = route.to_index_space(route.embedder.encode(["where is my parcel", "refund please"]))
    assert vectors.shape == (2, pair.dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert not vectors[:, 32:].any()  # the other part's place is empty


def test_routes_apply_to_combined_models_only():
    assert language_routes(HashingPart("english", 32, "a"), {"en": "english"}) == {}


def test_a_route_to_a_model_that_is_not_a_part_is_a_configuration_error():
    pair, _, _ = _pair()
    with pytest.raises(ValueError, match="not a part"):
        language_routes(pair, {"en": "bundled:multilingual-e5-small"})


def test_by_default_english_reads_minilm_alone():
    assert Settings(_env_file=None).embedding_routes == {"en": MINILM}


@pytest.fixture(scope="module")
def triage(app):
    service = app.state.container.triage
    if set(service.routes) != {"en"}:
        pytest.fail(f"the test app should run the default routes, has {sorted(service.routes)}")
    return service


def test_english_messages_are_classified_by_the_intents_trained_on_minilm(triage):
    route = triage.routes["en"]
    assert route.embedding.model_name == MINILM
    assert route.classifier.embedder is route.embedding.embedder
    assert triage.classifier_for("en") is route.classifier
    assert triage.embedder_for("es") is triage.embedder
    assert triage.classifier_for("es") is triage.classifier
    # the same intents on both sides: an English message and a Spanish one land in one taxonomy
    assert set(route.classifier.taxonomy.names) == set(triage.classifier.taxonomy.names)


def test_english_and_other_languages_get_vectors_in_the_combined_space(triage):
    english, english_vector = triage.triage_with_embedding(TriageRequest(text="I forgot my password"))
    spanish, spanish_vector = triage.triage_with_embedding(
        TriageRequest(text="Olvidé mi contraseña y no puedo entrar a mi cuenta")
    )
    assert (english.language.code, spanish.language.code) == ("en", "es")
    assert english.intent.name == spanish.intent.name == "account_access"
    assert english_vector.shape == spanish_vector.shape == (triage.embedder.dimension,)
    minilm_dim = triage.routes["en"].embedding.embedder.dimension
    assert not english_vector[minilm_dim:].any()  # MiniLM alone
    assert spanish_vector[minilm_dim:].any()  # the pair


def test_a_batch_mixing_languages_answers_in_the_order_asked(triage):
    texts = ["Where is my parcel?", "¿Dónde está mi paquete?", "I want to cancel my order", "Je veux annuler"]
    batch = triage.triage_batch([TriageRequest(text=t) for t in texts])
    one_by_one = [triage.triage(TriageRequest(text=t)) for t in texts]
    assert [r.language.code for r in batch] == ["en", "es", "en", "fr"]
    assert [r.intent.name for r in batch] == [r.intent.name for r in one_by_one]


def test_without_routes_every_language_reads_the_whole_model(app, settings):
    from service.triage.service import TriageService

    unrouted = TriageService.from_settings(
        settings.model_copy(update={"embedding_routes": {}}), app.state.container.embedder
    )
    assert unrouted.routes == {}
    _, vector = unrouted.triage_with_embedding(TriageRequest(text="I forgot my password"))
    assert vector[app.state.container.triage.routes["en"].embedding.embedder.dimension :].any()


def test_the_default_model_names_use_as_its_second_part(app):
    embedder = app.state.container.embedder
    assert isinstance(embedder, ConcatEmbedder)
    assert embedder.names == [MINILM, USE_V3]


def test_article_searches_in_a_routed_locale_rank_by_its_part(app):
    kb = app.state.container.kb
    minilm_dim = kb.routes["en"].embedder.dimension
    assert not kb.query_vector("how do I reset my password", "en-GB")[minilm_dim:].any()
    assert kb.query_vector("¿cómo cambio mi contraseña?", "es")[minilm_dim:].any()
    assert kb.query_vector("how do I reset my password", None)[minilm_dim:].any()  # no locale: the pair


def test_a_message_whose_language_the_detector_cannot_tell_reads_the_whole_model(triage):
    """A greeting falls back to the default locale (English): it is not known to be English, so it does not
    take the English route."""
    read, vector = triage.triage_with_embedding(TriageRequest(text="hallöchen"))
    assert (read.language.code, read.language.source) == ("en", "default")
    assert vector[triage.routes["en"].embedding.embedder.dimension :].any()
