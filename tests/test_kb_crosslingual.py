"""Articles across languages: the customer's language first, then the default locale's, then any other;
hits say which language they are in; the cross-lingual eval set is well formed.

The corpus here has hand-made vectors (one direction per topic), so the language rule is tested on its own,
whatever encoder is configured: the same code runs with the English default or a multilingual model.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from eval.retrieval import CROSSLINGUAL_DATA, _rank_metrics, load_crosslingual
from service.kb import ann as ann_mod
from service.kb.articles import Article, load_articles
from service.kb.chunking import chunk_articles
from service.kb.models import ArticleHit
from service.kb.retrieval import Corpus, FusionWeights, search
from service.settings import REPO_ROOT

TOPICS = ("password", "returns", "tracking", "invoice")
DIM = 8


def _article(aid: str, locale: str, topic: str, intent: str) -> Article:
    return Article(
        id=aid,
        title=f"{topic} ({locale})",
        locale=locale,
        intents=(intent,),
        tags=(),
        url=f"https://help.northwind.example/{locale}/{aid}",
        summary=f"About {topic}.",
        updated_at="2025-03-01",
        body=f"## {topic}\n\n1. Step one.\n2. Step two.\n",
    )


ARTICLES = [
    _article("reset-password", "en", "password", "account_access"),
    _article("start-a-return", "en", "returns", "return_item"),
    _article("track-your-order", "en", "tracking", "order_status"),
    _article("es-devolver", "es", "returns", "return_item"),
    _article("es-seguimiento", "es", "tracking", "order_status"),
    _article("de-rechnung", "de", "invoice", "invoice_request"),
]


def _direction(topic: str) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[TOPICS.index(topic)] = 1.0
    return v


def _query(topic: str, *, lean: dict[str, float] | None = None) -> np.ndarray:
    """A query vector about `topic`, leaning a little towards other topics."""
    v = _direction(topic)
    for other, weight in (lean or {}).items():
        v = v + weight * _direction(other)
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    chunks = chunk_articles(ARTICLES)
    by_id = {a.id: a for a in ARTICLES}
    rows = []
    for c in chunks:
        topic = by_id[c.article_id].title.split(" (")[0]
        v = _direction(topic)
        if c.language != "en":  # as with real encoders, a translation sits a little apart from the original
            v[DIM - 1] = 0.15
        rows.append(v / np.linalg.norm(v))
    vectors = np.asarray(rows, dtype=np.float32)
    return Corpus(ARTICLES, chunks, vectors, ann_mod.build(vectors, ann_mod.IndexType.flat))


def _search(corpus: Corpus, vector: np.ndarray, locale: str | None, **kw):
    return search(corpus, "x", vector, locale=locale, default_locale="en", k=3, **kw)


def test_an_article_in_the_customers_language_comes_first(corpus):
    result = _search(corpus, _query("returns"), "es-MX")
    assert not result.fallback and result.language == "es"
    assert result.hits[0].article_id == "es-devolver"
    assert {h.locale for h in result.hits} == {"es"}  # English equivalents are not mixed in


def test_a_language_without_articles_gets_the_default_locales_articles_marked_as_fallback(corpus):
    result = _search(corpus, _query("password"), "it-IT")
    assert result.fallback and result.language == "en"
    assert result.hits[0].article_id == "reset-password" and result.hits[0].locale == "en"


def test_when_no_article_in_the_customers_language_fits_the_best_one_in_another_language_is_used(corpus):
    # Spanish has articles, but none about passwords: they rank behind three English ones
    result = _search(corpus, _query("password", lean={"tracking": 0.2}), "es")
    assert result.fallback and result.language == "en"
    assert result.hits[0].article_id == "reset-password"


def test_the_customers_language_is_kept_unless_another_is_clearly_closer(corpus):
    # about tracking and passwords: track-your-order, es-seguimiento just behind it, then reset-password
    vector = _query("password", lean={"tracking": 1.1})
    assert _search(corpus, vector, "es").language == "es"
    # a gap of 0 gives up the customer's language for any closer article
    assert _search(corpus, vector, "es", weights=FusionWeights(language_gap=0.0)).language == "en"


def test_after_the_default_locale_any_other_language_is_searched(corpus):
    # an Italian customer asks for an invoice: only a German article exists
    result = _search(corpus, _query("invoice"), "it")
    assert result.fallback and result.language == "de"
    assert result.hits[0].article_id == "de-rechnung"


def test_an_intent_filter_keeps_the_customers_language_when_it_has_an_article_for_the_intent(corpus):
    # the editor tagged the Spanish article for the intent: it is on topic whatever the vectors say
    result = _search(corpus, _query("password"), "es", intent="return_item")
    assert not result.fallback and [h.article_id for h in result.hits] == ["es-devolver"]


def test_an_intent_without_an_article_in_the_customers_language_falls_back(corpus):
    result = _search(corpus, _query("password"), "es", intent="account_access")
    assert result.fallback and [h.article_id for h in result.hits] == ["reset-password"]


def test_no_locale_means_the_default_locale_without_switching(corpus):
    result = _search(corpus, _query("invoice"), None)
    assert not result.fallback and result.language == "en"


def test_without_a_query_vector_the_customers_language_is_used_when_it_has_articles(corpus):
    result = search(corpus, "devolver", None, locale="es", default_locale="en", k=3)
    assert not result.fallback and result.language == "es"


def test_a_hit_carries_its_articles_language_in_the_api_model():
    hit = ArticleHit(
        article_id="a",
        title="t",
        url="https://help.northwind.example/pt/a",
        summary="s",
        snippet="s",
        score=0.5,
        matched_section="",
        locale="pt-BR",
    )
    assert hit.language == "pt"
    dumped = hit.model_dump(mode="json")
    assert dumped["language"] == "pt"
    assert "language" in ArticleHit.model_json_schema(mode="serialization")["properties"]
    # what drafts need of the article stays out of the API
    assert "steps" not in dumped and "intents" not in dumped


def test_the_crosslingual_eval_set_is_large_varied_and_labelled_with_bundled_articles():
    queries = load_crosslingual(CROSSLINGUAL_DATA)
    languages = Counter(q.language for q in queries)
    assert len(queries) >= 60 and len(languages) >= 8
    assert all(n >= 4 for n in languages.values())
    known = {a.id for a in load_articles(REPO_ROOT / "kb_index" / "articles")}
    assert all(q.relevant <= known for q in queries)
    # every query has an answer in another language than its own (what the set measures)
    lang = {a.id: a.locale.split("-")[0] for a in load_articles(REPO_ROOT / "kb_index" / "articles")}
    assert all(any(lang[a] != q.language for a in q.relevant) for q in queries)


def test_a_row_without_a_label_is_refused(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "q1", "text": "hola", "language": "es"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no relevant_article_ids"):
        load_crosslingual(path)


def test_recall_counts_any_labelled_article_in_the_top_k_and_mrr_the_first_one():
    relevant = frozenset({"b", "c"})
    assert _rank_metrics(["a", "b", "c"], relevant, 3) == (1.0, 0.5)
    assert _rank_metrics(["a", "x", "y", "c"], relevant, 3) == (0.0, 0.25)
    assert _rank_metrics([], relevant, 3) == (0.0, 0.0)
