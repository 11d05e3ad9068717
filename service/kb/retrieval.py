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
(`es-MX` finds `es` and `es-ES` articles).

Articles across languages: the customer's language first. The languages are tried in tiers: the customer's,
then the default locale's, then every other language together. A romanised variety reads other languages'
articles first (`VARIETY_ARTICLE_LANGUAGES`: Hinglish English then Hindi, Arabizi Arabic, Tagalog Tagalog then
English), each its own tier before the default locale's. A tier is used when it has an article that
passes the filters and that article *fits*; otherwise the next tier is tried, and the result says so
(`fallback`, and each hit's `locale`). An article of the tier fits when

* the search is filtered by intent (an editor tagged the article for that intent: it is on topic), or
* the query has no vector or no locale was asked for (nothing to compare; no locale = the default locale), or
* no article of the later tiers is clearly closer to the query (dense): with `own` and `other` the best cosine
  of an article of this tier and of the later ones, `top` the larger and `typical` the median of the best
  cosines of the articles retrieved, the tier fits unless
  `other - own > FusionWeights.language_gap * (top - typical)`.

The gap is measured in units of the spread between the best and a typical article for this query, not in raw
cosine, so it means the same for any encoder: cosine scales differ between models (e5's cluster near 0.8) and
every encoder favours its query's language. With an English-only encoder a question in Spanish is closest to
Spanish articles, so the customer's language practically always wins when it has articles; with a
multilingual encoder a clearly better article in another language wins. The last tier is
always used when it has articles.
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
    # another language wins when its best article is closer by more than this share of the score spread
    language_gap: float = 0.3


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


# Romanised and code-mixed varieties (triage's BCP 47 tags) have few or no articles of their own; their
# readers read these languages' articles, in this order, before the default locale's:
# * hi-Latn (Hinglish) → en, hi: Hinglish writers mix English in and read it; many read Devanagari slowly
#   (the reason they type Hindi in Latin letters), so the Hindi article comes second;
# * ar-Latn (Arabizi) → ar: Arabizi is a keyboard habit of people who read Arabic script (Modern Standard
#   Arabic articles serve every dialect), and an English or French article would shut out those whose
#   English or French is weak; the default locale's articles (English by default) come next;
# * tl (Tagalog, Taglish) → tl, en: Tagalog articles when there are any, then English, which Filipinos read
#   (an official language, the language of most of the terms they mix in).
VARIETY_ARTICLE_LANGUAGES: dict[str, tuple[str, ...]] = {
    "hi-latn": ("en", "hi"),
    "ar-latn": ("ar",),
    "tl": ("tl", "en"),
    "fil": ("tl", "en"),
}


def reading_languages(locale: str) -> tuple[str, ...]:
    """The article languages a customer with this locale or detected tag reads first, in order: its variety's
    (`hi-Latn-IN` → en, hi) or else its language (`es-MX` → es)."""
    tag = locale.replace("_", "-").lower()
    parts = tag.split("-")
    for key in ("-".join(parts[:2]), parts[0]):
        if key in VARIETY_ARTICLE_LANGUAGES:
            return VARIETY_ARTICLE_LANGUAGES[key]
    return (language_of(locale),)


def language_tiers(
    corpus: Corpus, language: str, default_language: str, also: Sequence[str] = ()
) -> list[tuple[str, ...]]:
    """The order languages are tried in: the customer's, the other languages they read (`also`, for
    romanised varieties), the default's, then all the others together."""
    ordered = list(dict.fromkeys([language, *also, default_language]))
    tiers: list[tuple[str, ...]] = [(lang,) for lang in ordered]
    rest = tuple(sorted(corpus.languages - set(ordered)))
    if rest:
        tiers.append(rest)
    return tiers


def another_language_is_closer(
    corpus: Corpus, query_vector: np.ndarray, own: np.ndarray, later: np.ndarray, gap: float, depth: int
) -> bool:
    """True when an article of `later` is clearly closer to the query than every article of `own` (module
    doc): by more than `gap` times the spread between the best and the median article."""
    pool = own | later
    scores, ids = corpus.ann.search(query_vector.reshape(1, -1), depth, allowed=pool[corpus.chunk_article])
    best: dict[int, float] = {}
    for i, score in zip(ids[0], scores[0], strict=True):
        if i >= 0:
            art = int(corpus.chunk_article[int(i)])
            best[art] = max(best.get(art, -np.inf), float(score))
    own_best = max((v for a, v in best.items() if own[a]), default=-np.inf)
    other_best = max((v for a, v in best.items() if later[a]), default=-np.inf)
    if own_best == -np.inf or other_best == -np.inf:
        return own_best == -np.inf
    spread = max(own_best, other_best) - float(np.median(list(best.values())))
    return other_best - own_best > gap * max(spread, 1e-6)


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
    language_gap: float = FusionWeights.language_gap,
) -> Candidates:
    """Both retrievers' candidates from the first language tier that has a fitting article (module doc)."""
    language, *also = reading_languages(locale or default_locale)
    tiers = language_tiers(corpus, language, language_of(default_locale), also)
    masks = [corpus.article_mask(None, intent, tags) & np.isin(corpus.article_language, t) for t in tiers]
    compare = locale is not None and not intent and query_vector is not None
    for i, (tier, mask) in enumerate(zip(tiers, masks, strict=True)):
        if not mask.any():
            continue
        later = np.logical_or.reduce(masks[i + 1 :]) if i + 1 < len(masks) else None
        if compare and later is not None and later.any() and query_vector is not None:
            if another_language_is_closer(corpus, query_vector, mask, later, language_gap, depth):
                continue
        return _fetch(corpus, query, query_vector, tier, mask, fallback=i > 0, depth=depth, modes=modes)
    return Candidates(language=language, fallback=False)


def _fetch(
    corpus: Corpus,
    query: str,
    query_vector: np.ndarray | None,
    tier: tuple[str, ...],
    mask: np.ndarray,
    *,
    fallback: bool,
    depth: int,
    modes: Sequence[Mode],
) -> Candidates:
    chunk_mask = mask[corpus.chunk_article]
    allowed = None if chunk_mask.all() else chunk_mask
    dense: list[tuple[int, float]] = []
    if Mode.dense in modes and query_vector is not None:
        scores, ids = corpus.ann.search(query_vector.reshape(1, -1), depth, allowed=allowed)
        dense = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
    lexical: list[tuple[int, float]] = []
    if Mode.bm25 in modes:
        # one BM25 index per language: scores of different languages are merged by score (several only in the
        # last tier)
        for lang in tier:
            lexical += corpus.lexical.search(query, language=lang, top_n=depth, allowed=allowed)
        lexical = sorted(lexical, key=lambda pair: -pair[1])[:depth]
    if len(tier) == 1:
        language = tier[0]
    else:  # the language of the closest article of the tier
        best = dense[0][0] if dense else lexical[0][0] if lexical else None
        language = corpus.chunks[best].language if best is not None else tier[0]
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
        language_gap=weights.language_gap,
    )
    return SearchResult(
        hits=fuse(corpus, cands, k=k, mode=mode, weights=weights),
        language=cands.language,
        fallback=cands.fallback,
    )
