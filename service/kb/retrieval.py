"""Hybrid retrieval over article chunks: dense (FAISS) + BM25, fused by weighted reciprocal rank fusion.

Both retrievers rank chunks; each ranking is first collapsed to articles (an article takes the rank of its
best chunk), then the article rankings are fused:

    score(a) = sum_m  w_m / (rrf_k + rank_m(a))          (rank 1 = best; absent = no contribution)

and divided by its maximum (sum_m w_m / (rrf_k + 1)), so 1.0 means "first for every retriever". The matched
section of an article is its chunk with the best chunk-level fused score.

A query whose words occur in only a few chunks (at most SPECIFIC_LEXICAL_MATCHES, and at most one chunk in
SPECIFIC_SHARE: a product code, an error message, a term an editor just added) names those chunks; the
embedding model does not know such tokens and ranks their look-alikes. For such a query BM25 weighs as much as
the dense ranking. Natural questions match many chunks and keep the tuned weights (StackFAQ MRR@10 is
unchanged by the rule).

Filters (locale, intent, tags) restrict candidates before ranking. Locale matches on the language subtag
(`es-MX` finds `es` and `es-ES` articles); when no article of that language passes the other filters, the
default locale is used instead and the result says so (`fallback`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from service.kb.ann import AnnIndex
from service.kb.articles import Article, language_of
from service.kb.chunking import Chunk
from service.kb.lexical import LexicalIndex

SNIPPET_CHARS = 220
SPECIFIC_LEXICAL_MATCHES = 3
SPECIFIC_SHARE = 20  # ... and at most one chunk in 20: in a tiny corpus every query matches few chunks


class Mode(StrEnum):
    dense = "dense"
    bm25 = "bm25"
    hybrid = "hybrid"


@dataclass(frozen=True)
class FusionWeights:
    dense: float = 1.0
    bm25: float = 0.3
    rrf_k: int = 60
    depth: int = 100  # chunks fetched from each retriever before fusion


@dataclass(frozen=True)
class Hit:
    article_id: str
    title: str
    url: str
    summary: str
    snippet: str
    score: float
    matched_section: str
    locale: str
    chunk_id: str
    dense_rank: int | None = None
    bm25_rank: int | None = None


@dataclass(frozen=True)
class Candidates:
    """What each retriever returned for one query, before fusion (reusable across fusion weights)."""

    language: str
    fallback: bool
    dense: list[tuple[int, float]] = field(default_factory=list)  # (chunk position, cosine)
    bm25: list[tuple[int, float]] = field(default_factory=list)  # (chunk position, BM25 score)


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    language: str
    fallback: bool


class Corpus:
    """Articles, their chunks, chunk vectors and both indexes: everything one search needs (immutable)."""

    def __init__(
        self,
        articles: Sequence[Article],
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        ann: AnnIndex,
        lexical: LexicalIndex | None = None,
    ) -> None:
        self.articles: dict[str, Article] = {a.id: a for a in articles}
        self.article_ids = list(self.articles)
        self.chunks = list(chunks)
        self.vectors = vectors
        self.ann = ann
        position = {aid: i for i, aid in enumerate(self.article_ids)}
        self.chunk_article = np.asarray([position[c.article_id] for c in self.chunks], dtype=np.int64)
        self.article_language = np.asarray([a.language for a in self.articles.values()], dtype=object)
        self.lexical = lexical or LexicalIndex(
            [c.embed_text for c in self.chunks], [c.language for c in self.chunks]
        )
        if ann.ntotal != len(self.chunks):
            raise ValueError(f"index holds {ann.ntotal} vectors for {len(self.chunks)} chunks")

    @property
    def languages(self) -> set[str]:
        return set(self.article_language.tolist())

    def article_mask(
        self, language: str | None, intent: str | None, tags: Sequence[str] | None
    ) -> np.ndarray:
        mask = np.ones(len(self.article_ids), dtype=bool)
        if language:
            mask &= self.article_language == language
        if intent:
            mask &= np.asarray([intent in a.intents for a in self.articles.values()], dtype=bool)
        if tags:
            wanted = {t.lower() for t in tags}
            mask &= np.asarray(
                [wanted <= {t.lower() for t in a.tags} for a in self.articles.values()], dtype=bool
            )
        return mask


def candidates(
    corpus: Corpus,
    query: str,
    query_vector: np.ndarray | None,
    *,
    locale: str | None,
    default_locale: str,
    intent: str | None = None,
    tags: Sequence[str] | None = None,
    depth: int = 100,
    modes: Sequence[Mode] = (Mode.dense, Mode.bm25),
) -> Candidates:
    language = language_of(locale or default_locale)
    fallback = False
    mask = corpus.article_mask(language, intent, tags)
    if not mask.any():
        default_language = language_of(default_locale)
        fallback = language != default_language
        language = default_language
        mask = corpus.article_mask(language, intent, tags)
    if not mask.any():
        return Candidates(language=language, fallback=fallback)
    chunk_mask = mask[corpus.chunk_article]
    allowed = None if chunk_mask.all() else chunk_mask
    dense: list[tuple[int, float]] = []
    if Mode.dense in modes and query_vector is not None:
        scores, ids = corpus.ann.search(query_vector.reshape(1, -1), depth, allowed=allowed)
        dense = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
    lexical: list[tuple[int, float]] = []
    if Mode.bm25 in modes:
        lexical = corpus.lexical.search(query, language=language, top_n=depth, allowed=allowed)
    return Candidates(language=language, fallback=fallback, dense=dense, bm25=lexical)


def _article_ranks(corpus: Corpus, ranked_chunks: list[tuple[int, float]]) -> dict[int, int]:
    ranks: dict[int, int] = {}
    for pos, _ in ranked_chunks:
        art = int(corpus.chunk_article[pos])
        if art not in ranks:
            ranks[art] = len(ranks) + 1
    return ranks


def snippet_of(text: str, limit: int = SNIPPET_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",.;:") + "…"


def fuse(
    corpus: Corpus,
    cands: Candidates,
    *,
    k: int,
    mode: Mode = Mode.hybrid,
    weights: FusionWeights = FusionWeights(),
) -> list[Hit]:
    use_dense = mode == Mode.dense or (mode == Mode.hybrid and weights.dense > 0)
    use_bm25 = mode == Mode.bm25 or (mode == Mode.hybrid and weights.bm25 > 0)
    lists: list[tuple[float, list[tuple[int, float]]]] = []
    if use_dense:
        lists.append((weights.dense if mode == Mode.hybrid else 1.0, cands.dense))
    if use_bm25:
        bm25_weight = weights.bm25 if mode == Mode.hybrid else 1.0
        n_matches = len(cands.bm25)
        if (
            mode == Mode.hybrid
            and 0 < n_matches <= SPECIFIC_LEXICAL_MATCHES
            and n_matches * SPECIFIC_SHARE <= len(corpus.chunks)
        ):
            bm25_weight = max(bm25_weight, weights.dense)
        lists.append((bm25_weight, cands.bm25))
    if not lists:
        return []
    rrf_k = weights.rrf_k
    article_score: dict[int, float] = {}
    chunk_score: dict[int, float] = {}
    per_mode_ranks: list[dict[int, int]] = []
    for weight, ranked in lists:
        ranks = _article_ranks(corpus, ranked)
        per_mode_ranks.append(ranks)
        for art, rank in ranks.items():
            article_score[art] = article_score.get(art, 0.0) + weight / (rrf_k + rank)
        for rank, (pos, _) in enumerate(ranked, start=1):
            chunk_score[pos] = chunk_score.get(pos, 0.0) + weight / (rrf_k + rank)
    best_chunk: dict[int, int] = {}
    for pos, score in chunk_score.items():
        art = int(corpus.chunk_article[pos])
        if art not in best_chunk or score > chunk_score[best_chunk[art]]:
            best_chunk[art] = pos
    top = sum(w / (rrf_k + 1) for w, _ in lists)
    # ties (same fused score) are broken by the dense rank, then the lexical rank
    order = sorted(
        article_score, key=lambda a: (-article_score[a], *(r.get(a, 1 << 30) for r in per_mode_ranks))
    )
    hits: list[Hit] = []
    dense_ranks = per_mode_ranks[0] if use_dense else {}
    bm25_ranks = per_mode_ranks[-1] if use_bm25 else {}
    for art in order[:k]:
        article = corpus.articles[corpus.article_ids[art]]
        chunk = corpus.chunks[best_chunk[art]]
        hits.append(
            Hit(
                article_id=article.id,
                title=article.title,
                url=article.url,
                summary=article.summary,
                snippet=snippet_of(chunk.text or article.summary),
                score=round(article_score[art] / top, 4),
                matched_section=chunk.section,
                locale=article.locale,
                chunk_id=chunk.chunk_id,
                dense_rank=dense_ranks.get(art),
                bm25_rank=bm25_ranks.get(art),
            )
        )
    return hits


def search(
    corpus: Corpus,
    query: str,
    query_vector: np.ndarray | None,
    *,
    locale: str | None,
    default_locale: str,
    k: int = 3,
    intent: str | None = None,
    tags: Sequence[str] | None = None,
    mode: Mode = Mode.hybrid,
    weights: FusionWeights = FusionWeights(),
) -> SearchResult:
    modes = {Mode.dense: (Mode.dense,), Mode.bm25: (Mode.bm25,), Mode.hybrid: (Mode.dense, Mode.bm25)}[mode]
    cands = candidates(
        corpus,
        query,
        query_vector,
        locale=locale,
        default_locale=default_locale,
        intent=intent,
        tags=tags,
        depth=max(weights.depth, 4 * k),
        modes=modes,
    )
    return SearchResult(
        hits=fuse(corpus, cands, k=k, mode=mode, weights=weights),
        language=cands.language,
        fallback=cands.fallback,
    )
