"""Index build, incremental rebuild, atomic publish, validated loading, and ANN parameter tuning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from unittest.mock import create_autospec

import numpy as np
import pytest

from bench.kb import gaussian_mixture
from service.embeddings import SentenceTransformerEmbedder, get_embedder
from service.kb import ann, store
from service.kb.lint import default_intent_names
from service.kb.retrieval import search
from service.settings import REPO_ROOT

ARTICLES = {
    "track": (
        "en",
        "Track your order",
        "order_status",
        "orders",
        "Open Orders, tap the order, then tap Track package.",
        "## Track in the app\n\n1. Open **Orders**.\n2. Tap **Track package**.\n\n"
        "## Tracking not working\n\nThe tracking link starts within 24 hours of the shipping email.\n",
    ),
    "refund": (
        "en",
        "Where is my refund?",
        "refund_status",
        "refunds",
        "Refunds are issued within 2 business days of receiving the return.",
        "## How long refunds take\n\nBanks take 3 to 10 business days to show the money.\n",
    ),
    "discount": (
        "en",
        "Use a discount code",
        "discount_code",
        "promotions",
        "At checkout tap Add promo code and enter the code.",
        "## Add a promo code\n\n1. Tap **Checkout**.\n2. Tap **Add promo code**.\n",
    ),
}


def write_article(
    root: Path, aid: str, locale: str, title: str, intent: str, tag: str, summary: str, body: str
) -> Path:
    path = root / f"{aid}.md"
    path.write_text(
        f'---\nid: {aid}\ntitle: "{title}"\nlocale: {locale}\nintents: [{intent}]\ntags: [{tag}]\n'
        f'url: https://help.northwind.example/{locale}/{aid}\nsummary: "{summary}"\nupdated_at: 2025-03-01\n'
        f"---\n\n{body}",
        encoding="utf-8",
    )
    return path


def write_kb(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for aid, spec in ARTICLES.items():
        write_article(root, aid, *spec)
    return root


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return get_embedder("bundled:all-MiniLM-L6-v2", REPO_ROOT / "data" / "cache" / "embeddings")


@pytest.fixture
def spy(embedder):
    """The real embedder behind a typed spy that counts what each build embeds."""
    wrapped = create_autospec(SentenceTransformerEmbedder, instance=True)
    wrapped.encode.side_effect = embedder.encode
    wrapped.model_id = embedder.model_id
    wrapped.dimension = embedder.dimension
    return wrapped


def embedded_texts(spy) -> list[str]:
    return [t for call in spy.encode.call_args_list for t in call.args[0]]


OPTIONS = store.BuildOptions(known_intents=default_intent_names())


def test_build_then_load_round_trips_articles_chunks_and_vectors(tmp_path, embedder):
    articles = write_kb(tmp_path / "articles")
    report = store.build_index(articles, tmp_path / "index", embedder, OPTIONS)
    assert report.published and report.articles == 3 and report.added == sorted(ARTICLES)
    snap = store.load_current(tmp_path / "index", model_id=embedder.model_id, dimension=embedder.dimension)
    assert set(snap.corpus.articles) == set(ARTICLES)
    assert len(snap.corpus.chunks) == report.chunks == snap.corpus.ann.ntotal
    manifest = snap.manifest
    assert manifest["model_id"] == embedder.model_id and manifest["dimension"] == embedder.dimension
    assert manifest["index_type"] == "flat" and manifest["built_at"]
    assert set(manifest["articles_index"]) == set(ARTICLES)
    chunk_article = {c.chunk_id: c.article_id for c in snap.corpus.chunks}
    for aid, entry in manifest["articles_index"].items():
        ids = [c.chunk_id for c in snap.corpus.chunks][
            entry["first_chunk"] : entry["first_chunk"] + entry["chunk_count"]
        ]
        assert {chunk_article[c] for c in ids} == {aid}
    # stored vectors are the embeddings of the chunk texts, and the index finds a chunk by its own text
    first = snap.corpus.chunks[1]
    vec = embedder.encode([first.embed_text])[0]
    np.testing.assert_allclose(snap.corpus.vectors[1], vec, atol=1e-5)
    hits = search(snap.corpus, first.embed_text, vec, locale="en", default_locale="en", k=1).hits
    assert hits[0].article_id == first.article_id


def test_chunks_keep_title_and_heading_path(tmp_path, embedder):
    store.build_index(write_kb(tmp_path / "articles"), tmp_path / "index", embedder, OPTIONS)
    snap = store.load_current(tmp_path / "index")
    track = [c for c in snap.corpus.chunks if c.article_id == "track"]
    assert [c.heading_path for c in track] == [(), ("Track in the app",), ("Tracking not working",)]
    assert track[0].text == ARTICLES["track"][4]  # the overview chunk is the summary
    assert all(c.embed_text.startswith("Track your order") for c in track)
    assert "Tracking not working" in track[2].embed_text


def test_incremental_rebuild_embeds_only_changed_and_new_articles_and_drops_deleted(tmp_path, spy):
    articles = write_kb(tmp_path / "articles")
    first = store.build_index(articles, tmp_path / "index", spy, OPTIONS)
    assert len(embedded_texts(spy)) == first.chunks
    spy.encode.reset_mock()

    unchanged = store.build_index(articles, tmp_path / "index", spy, OPTIONS)
    assert not unchanged.published and embedded_texts(spy) == []

    write_article(
        articles,
        "refund",
        "en",
        "Where is my refund?",
        "refund_status",
        "refunds",
        "Refunds are issued within 2 business days of receiving the return.",
        "## How long refunds take\n\nBanks take up to 10 business days.\n",
    )
    write_article(
        articles,
        "es-pedido",
        "es",
        "Seguir tu pedido",
        "order_status",
        "pedidos",
        "Abre Pedidos y toca Seguir envío.",
        "## Seguir el envío\n\n1. Abre **Pedidos**.\n",
    )
    (articles / "discount.md").unlink()
    report = store.build_index(articles, tmp_path / "index", spy, OPTIONS)
    texts = embedded_texts(spy)
    assert report.updated == ["refund"] and report.added == ["es-pedido"] and report.removed == ["discount"]
    # the changed section and the new article's two chunks; the refund overview chunk did not change
    assert len(texts) == report.embedded_chunks == 3
    assert any("up to 10 business days" in t for t in texts)
    assert not any("Track" in t for t in texts)
    snap = store.load_current(tmp_path / "index")
    assert set(snap.corpus.articles) == {"track", "refund", "es-pedido"}
    assert all(c.article_id != "discount" for c in snap.corpus.chunks)


def test_a_new_model_re_embeds_everything(tmp_path, spy):
    articles = write_kb(tmp_path / "articles")
    store.build_index(articles, tmp_path / "index", spy, OPTIONS)
    spy.encode.reset_mock()
    spy.model_id = "another-model"
    report = store.build_index(articles, tmp_path / "index", spy, OPTIONS)
    assert report.published and report.embedded_chunks == report.chunks == len(embedded_texts(spy))


def test_a_build_rejected_by_lint_publishes_nothing(tmp_path, embedder):
    articles = write_kb(tmp_path / "articles")
    good = store.build_index(articles, tmp_path / "index", embedder, OPTIONS)
    (articles / "broken.md").write_text("no front matter\n", encoding="utf-8")
    with pytest.raises(store.BuildRejected) as rejected:
        store.build_index(articles, tmp_path / "index", embedder, OPTIONS)
    assert any(i.rule == "no-front-matter" for i in rejected.value.issues)
    assert store.current_version(tmp_path / "index") == good.build_id
    skipped = store.build_index(
        articles,
        tmp_path / "index",
        embedder,
        store.BuildOptions(known_intents=OPTIONS.known_intents, skip_invalid=True),
    )
    assert list(skipped.skipped) == [str(articles / "broken.md")]


def test_a_build_failing_midway_leaves_the_current_version_in_use(tmp_path, embedder, spy):
    articles = write_kb(tmp_path / "articles")
    good = store.build_index(articles, tmp_path / "index", embedder, OPTIONS)
    write_article(
        articles, "new", "en", "New article", "feedback", "feedback", "Tell us.", "## Tell us\n\nText.\n"
    )
    spy.encode.side_effect = RuntimeError("model crashed")
    with pytest.raises(RuntimeError):
        store.build_index(articles, tmp_path / "index", spy, OPTIONS)
    assert store.current_version(tmp_path / "index") == good.build_id
    assert not list((tmp_path / "index" / "versions").glob(".tmp-*"))
    assert "new" not in store.load_current(tmp_path / "index").corpus.articles


@pytest.mark.parametrize("damage", ["truncate-index", "garble-manifest", "delete-chunks"])
def test_a_corrupt_version_is_refused_on_load(tmp_path, embedder, damage):
    store.build_index(write_kb(tmp_path / "articles"), tmp_path / "index", embedder, OPTIONS)
    version = tmp_path / "index" / "versions" / store.current_version(tmp_path / "index")
    if damage == "truncate-index":
        data = (version / "index.faiss").read_bytes()
        (version / "index.faiss").write_bytes(data[: len(data) // 2])
    elif damage == "garble-manifest":
        (version / "manifest.json").write_text("{not json", encoding="utf-8")
    else:
        (version / "chunks.jsonl").unlink()
    with pytest.raises(store.IndexCorrupt):
        store.load_current(tmp_path / "index")


def test_loading_with_another_model_is_refused(tmp_path, embedder):
    store.build_index(write_kb(tmp_path / "articles"), tmp_path / "index", embedder, OPTIONS)
    with pytest.raises(store.IndexCorrupt, match="built with"):
        store.load_current(tmp_path / "index", model_id="some-other-model")


def test_missing_index_is_reported_as_not_built(tmp_path):
    with pytest.raises(store.IndexNotBuilt):
        store.load_current(tmp_path / "nothing-here")


def test_old_versions_are_garbage_collected(tmp_path, embedder):
    articles = write_kb(tmp_path / "articles")
    for _ in range(store.KEEP_VERSIONS + 2):
        store.build_index(
            articles,
            tmp_path / "index",
            embedder,
            store.BuildOptions(known_intents=OPTIONS.known_intents, force=True),
        )
    versions = [p.name for p in (tmp_path / "index" / "versions").iterdir()]
    assert len(versions) == store.KEEP_VERSIONS
    assert store.current_version(tmp_path / "index") in versions


def test_forced_index_types_are_built_tuned_and_recorded(tmp_path, embedder):
    articles = write_kb(tmp_path / "articles")
    report = store.build_index(
        articles,
        tmp_path / "index",
        embedder,
        store.BuildOptions(known_intents=OPTIONS.known_intents, index_type="hnsw"),
    )
    manifest = json.loads((tmp_path / "index" / "versions" / report.build_id / "manifest.json").read_text())
    assert manifest["index_type"] == "hnsw" and "efSearch" in manifest["index_params"]
    snap = store.load_current(tmp_path / "index")
    assert snap.corpus.ann.index.hnsw.efSearch == manifest["index_params"]["efSearch"]


def test_auto_index_type_is_exact_for_small_collections_and_ivf_for_large_ones():
    assert ann.choose_type(1_000) == ann.IndexType.flat
    assert ann.choose_type(2_000_000) == ann.IndexType.ivf
    assert ann.choose_type(10, "hnsw") == ann.IndexType.hnsw


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_are_tuned_to_the_recall_target(kind):
    data = gaussian_mixture(4_000, 64, seed=1, clusters=40)
    queries = gaussian_mixture(100, 64, seed=2, clusters=40)
    index = ann.build(data, kind, recall_target=0.95)
    _, found = index.search(queries, 10)
    assert ann.recall_at_k(found, ann.exact_neighbours(data, queries, 10)) >= 0.95


def test_search_with_a_filter_only_returns_allowed_positions():
    data = gaussian_mixture(2_000, 32, seed=3)
    allowed = np.zeros(len(data), dtype=bool)
    allowed[::7] = True
    for kind in ("flat", "ivf", "hnsw"):
        index = ann.build(data, kind)
        _, ids = index.search(data[:5], 10, allowed=allowed)
        found = ids[ids >= 0]
        assert found.size > 0 and allowed[found].all(), kind


def test_copying_a_published_version_elsewhere_still_loads(tmp_path, embedder):
    store.build_index(write_kb(tmp_path / "articles"), tmp_path / "index", embedder, OPTIONS)
    shutil.copytree(tmp_path / "index", tmp_path / "moved")
    assert len(store.load_current(tmp_path / "moved").corpus.articles) == 3


class PassagePrefixingEmbedder:
    """A query/passage model in the shape of e5 (`encode` for queries, `encode_passages` for documents) over
    the real MiniLM: passages are embedded with a "passage: " prefix, as e5 wants, so the two differ."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id + "#passage-test"
        self.dimension = inner.dimension

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.inner.encode([f"query: {t}" for t in texts])

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self.inner.encode([f"passage: {t}" for t in texts])


def test_article_chunks_are_embedded_as_passages_when_the_model_distinguishes_them(tmp_path, embedder):
    passage_model = PassagePrefixingEmbedder(embedder)
    store.build_index(write_kb(tmp_path / "articles"), tmp_path / "index", passage_model, OPTIONS)
    snap = store.load_current(tmp_path / "index", model_id=passage_model.model_id)
    texts = [c.embed_text for c in snap.corpus.chunks]
    np.testing.assert_allclose(snap.corpus.vectors, passage_model.encode_passages(texts), atol=1e-5)
    assert not np.allclose(snap.corpus.vectors, passage_model.encode(texts), atol=1e-3)
