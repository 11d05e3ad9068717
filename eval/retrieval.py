"""Retrieval evaluation on BEIR-format data (corpus.jsonl, queries.jsonl, qrels.tsv).

Each corpus document becomes an article (title; text as body) and goes through the same chunking, embedding,
FAISS and BM25 code as the knowledge base, so the numbers measure the product, not a copy of it.

Metrics per mode (dense | bm25 | hybrid): recall@1/5/10, MRR@10, nDCG@10 (binary or graded qrels), and latency
p50/p95 per query = query embedding (measured once per query, uncached) + that mode's search and fusion.

`tune_split` carves a seeded dev half of the queries, grid-searches the fusion weights (BM25 weight, RRF k) on
it and reports every mode on both halves with the tuned weights, so the tuned number can be checked on queries
the tuning never saw.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from service.embeddings import Embedder
from service.kb import ann as ann_mod
from service.kb.articles import Article
from service.kb.chunking import chunk_articles
from service.kb.retrieval import Candidates, Corpus, FusionWeights, Mode, candidates, fuse

BM25_WEIGHT_GRID = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
RRF_K_GRID = (5, 10, 20, 40, 60, 100)


@dataclass(frozen=True)
class BeirData:
    corpus: dict[str, dict]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _read_jsonl(path: Path) -> Iterable[dict]:
    with Path(path).open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{line_no}: not JSON ({exc.msg})") from exc


def load_beir(corpus: Path, queries: Path, qrels: Path) -> BeirData:
    docs = {str(d["_id"]): d for d in _read_jsonl(corpus)}
    qs = {str(q["_id"]): str(q["text"]) for q in _read_jsonl(queries)}
    rels: dict[str, dict[str, int]] = {}
    with Path(qrels).open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0] == "query-id":
                continue
            qid, did, score = parts[0], parts[1], int(float(parts[2]))
            if score > 0:
                rels.setdefault(qid, {})[did] = score
    qs = {qid: text for qid, text in qs.items() if qid in rels}
    return BeirData(corpus=docs, queries=qs, qrels=rels)


def corpus_articles(docs: dict[str, dict]) -> list[Article]:
    return [
        Article(
            id=did,
            title=str(d.get("title") or ""),
            locale="en",
            intents=(),
            tags=(),
            url="",
            summary="",
            updated_at="",
            body=str(d.get("text") or "") + "\n",
        )
        for did, d in docs.items()
    ]


def build_corpus(articles: list[Article], embedder: Embedder) -> Corpus:
    chunks = chunk_articles(articles)
    vectors = embedder.encode([c.embed_text for c in chunks])
    ann = ann_mod.build(vectors, ann_mod.IndexType.flat)
    return Corpus(articles, chunks, vectors, ann)


def query_metrics(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> dict[str, float]:
    """recall@1/5/10 (share of relevant docs found), MRR@k and nDCG@k (graded gains) for one query."""
    n_rel = len(relevant)
    out: dict[str, float] = {}
    for cut in (1, 5, 10):
        out[f"recall@{cut}"] = sum(1 for d in ranked[:cut] if d in relevant) / n_rel
    rr = 0.0
    for rank, did in enumerate(ranked[:k], start=1):
        if did in relevant:
            rr = 1.0 / rank
            break
    out[f"mrr@{k}"] = rr
    dcg = sum((2 ** relevant[d] - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    out[f"ndcg@{k}"] = dcg / idcg if idcg else 0.0
    return out


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else 0.0


@dataclass
class PreparedQuery:
    qid: str
    cands: Candidates
    embed_ms: float
    fetch_ms: dict[str, float]


def prepare(
    corpus: Corpus,
    data: BeirData,
    embedder: Embedder,
    *,
    depth: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[PreparedQuery]:
    """Embed each query once (timed, one at a time as a live request would) and fetch both candidate lists."""
    out = []
    total = len(data.queries)
    for i, (qid, text) in enumerate(data.queries.items()):
        t0 = time.perf_counter()
        vec = embedder.encode([text])[0]
        t1 = time.perf_counter()
        dense = candidates(
            corpus, text, vec, locale=None, default_locale="en", depth=depth, modes=(Mode.dense,)
        )
        t2 = time.perf_counter()
        lexical = candidates(
            corpus, text, None, locale=None, default_locale="en", depth=depth, modes=(Mode.bm25,)
        )
        t3 = time.perf_counter()
        cands = Candidates(
            language=dense.language, fallback=dense.fallback, dense=dense.dense, bm25=lexical.bm25
        )
        out.append(
            PreparedQuery(
                qid=qid,
                cands=cands,
                embed_ms=(t1 - t0) * 1000,
                fetch_ms={"dense": (t2 - t1) * 1000, "bm25": (t3 - t2) * 1000},
            )
        )
        if progress:
            progress(i + 1, total)
    return out


def evaluate_mode(
    corpus: Corpus,
    prepared: list[PreparedQuery],
    qrels: dict[str, dict[str, int]],
    mode: Mode,
    weights: FusionWeights,
    k: int = 10,
) -> dict:
    sums: dict[str, float] = {}
    latencies: list[float] = []
    for pq in prepared:
        t0 = time.perf_counter()
        hits = fuse(corpus, pq.cands, k=k, mode=mode, weights=weights)
        fuse_ms = (time.perf_counter() - t0) * 1000
        fetch = {
            Mode.dense: pq.fetch_ms["dense"],
            Mode.bm25: pq.fetch_ms["bm25"],
            Mode.hybrid: pq.fetch_ms["dense"] + pq.fetch_ms["bm25"],
        }[mode]
        embed = pq.embed_ms if mode != Mode.bm25 else 0.0
        latencies.append(embed + fetch + fuse_ms)
        for name, value in query_metrics([h.article_id for h in hits], qrels[pq.qid], k).items():
            sums[name] = sums.get(name, 0.0) + value
    n = max(1, len(prepared))
    result: dict = {name: round(total / n, 4) for name, total in sums.items()}
    result["queries"] = len(prepared)
    result["latency_ms"] = {
        "p50": round(_percentile(latencies, 50), 2),
        "p95": round(_percentile(latencies, 95), 2),
    }
    return result


def tune_weights(
    corpus: Corpus,
    prepared: list[PreparedQuery],
    qrels: dict[str, dict[str, int]],
    base: FusionWeights,
    k: int = 10,
) -> tuple[FusionWeights, list[dict]]:
    """Grid search of (bm25 weight > 0, rrf_k) by MRR@k on `prepared`.

    Ties go to the larger BM25 weight: on data where dense alone is as good, the lexical side is kept as
    strong as it can be for free, which is what carries exact terms (product names, order words) and
    non-English articles.
    """
    grid = []
    for bm25_w in BM25_WEIGHT_GRID:
        for rrf_k in RRF_K_GRID:
            w = replace(base, bm25=bm25_w, rrf_k=rrf_k)
            mrr = evaluate_mode(corpus, prepared, qrels, Mode.hybrid, w, k)[f"mrr@{k}"]
            grid.append({"bm25_weight": bm25_w, "rrf_k": rrf_k, f"mrr@{k}": mrr})
    best = max(grid, key=lambda g: (g[f"mrr@{k}"], g["bm25_weight"], g["rrf_k"]))
    return replace(base, bm25=best["bm25_weight"], rrf_k=best["rrf_k"]), grid


def split_queries(qids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    ids = sorted(qids)
    random.Random(seed).shuffle(ids)
    cut = int(round(len(ids) * fraction))
    return ids[:cut], ids[cut:]


def run(
    data: BeirData,
    embedder: Embedder,
    *,
    modes: Sequence[Mode],
    weights: FusionWeights,
    k: int = 10,
    tune_split: float | None = None,
    seed: int = 13,
    query_embedder: Embedder | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Evaluate. `query_embedder` (same model, no cache) makes query latency honest; default: `embedder`."""
    t0 = time.perf_counter()
    corpus = build_corpus(corpus_articles(data.corpus), embedder)
    build_s = time.perf_counter() - t0
    prepared = prepare(
        corpus, data, query_embedder or embedder, depth=max(weights.depth, 4 * k), progress=progress
    )
    report: dict = {
        "model": embedder.model_id,
        "documents": len(data.corpus),
        "chunks": len(corpus.chunks),
        "queries": len(prepared),
        "k": k,
        "index_build_s": round(build_s, 2),
        "weights": {"dense": weights.dense, "bm25": weights.bm25, "rrf_k": weights.rrf_k},
        "modes": {str(m): evaluate_mode(corpus, prepared, data.qrels, m, weights, k) for m in modes},
    }
    if tune_split:
        dev_ids, test_ids = split_queries([p.qid for p in prepared], tune_split, seed)
        dev = [p for p in prepared if p.qid in set(dev_ids)]
        test = [p for p in prepared if p.qid in set(test_ids)]
        tuned, grid = tune_weights(corpus, dev, data.qrels, weights, k)
        report["tuning"] = {
            "seed": seed,
            "dev_queries": len(dev),
            "test_queries": len(test),
            "tuned_weights": {"dense": tuned.dense, "bm25": tuned.bm25, "rrf_k": tuned.rrf_k},
            "dev": {str(m): evaluate_mode(corpus, dev, data.qrels, m, tuned, k) for m in modes},
            "test": {str(m): evaluate_mode(corpus, test, data.qrels, m, tuned, k) for m in modes},
            "test_with_configured_weights": {
                str(m): evaluate_mode(corpus, test, data.qrels, m, weights, k) for m in modes
            },
            "grid": grid,
        }
    return report
