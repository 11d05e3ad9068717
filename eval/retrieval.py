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

from service.embeddings import Embedder, encode_passages
from service.kb import ann as ann_mod
from service.kb.articles import Article, language_of
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
    texts = [c.embed_text for c in chunks]
    vectors = encode_passages(embedder, texts)  # e5: "passage: "; the same as `encode` for other models
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


# -- cross-lingual retrieval on the bundled knowledge base
# --------------------------------------------------------------------

CROSSLINGUAL_DATA = Path(__file__).resolve().parent / "data" / "crosslingual_queries.jsonl"


@dataclass(frozen=True)
class CrosslingualQuery:
    qid: str
    text: str
    language: str
    relevant: frozenset[str]


def load_crosslingual(path: Path = CROSSLINGUAL_DATA) -> list[CrosslingualQuery]:
    """Rows `{"id", "text", "language", "relevant_article_ids": [...]}`: any listed article answers the query
    (an English article and its equivalent in the query's language, when the knowledge base has one)."""
    out = []
    for row in _read_jsonl(path):
        relevant = frozenset(str(a) for a in row.get("relevant_article_ids") or ())
        if not relevant:
            raise ValueError(f"{path}: {row.get('id')}: no relevant_article_ids")
        out.append(
            CrosslingualQuery(
                qid=str(row["id"]), text=str(row["text"]), language=str(row["language"]), relevant=relevant
            )
        )
    return out


def _rank_metrics(ranked: Sequence[str], relevant: frozenset[str], k: int) -> tuple[float, float]:
    """(hit@k: a relevant article among the first k, reciprocal rank of the first relevant one within 10)."""
    hit = float(any(a in relevant for a in ranked[:k]))
    rr = next((1.0 / r for r, a in enumerate(ranked[:10], start=1) if a in relevant), 0.0)
    return hit, rr


def crosslingual(
    queries: Sequence[CrosslingualQuery],
    articles: list[Article],
    embedder: Embedder,
    *,
    weights: FusionWeights,
    k: int = 3,
    default_locale: str = "en",
) -> dict:
    """Per query language: recall@k (a relevant article in the top k) and MRR@10 of

    * `service`: what a customer gets, `search()` with the query's language as locale (customer's language
      first, other languages when none fits; `service.kb.retrieval`), hybrid;
    * `cross_only`: articles in the query's language removed, dense ranking only: pure cross-lingual
      retrieval (question in one language, article in another), which depends on the encoder alone.

    `articles_in_language` counts the service's hits@k in the query's language; `fallback` the queries
    answered from another language; `own_language_first`, over the queries whose language has a labelled
    article, the share whose first hit is that article (the customer's language first). Set
    REPLYDESK_EMBEDDING_MODEL to compare encoders.
    """
    from service.kb.retrieval import search

    corpus = build_corpus(articles, embedder)
    corpus_language = {a.id: language_of(a.locale) for a in articles}
    rows: dict[str, dict[str, float]] = {}
    details = []
    for q in queries:
        vec = embedder.encode([q.text])[0]
        result = search(
            corpus, q.text, vec, locale=q.language, default_locale=default_locale, k=10, weights=weights
        )
        service_ranked = [h.article_id for h in result.hits]
        other = corpus.article_language != q.language
        cross_ranked: list[str] = []
        if other.any():
            scores, ids = corpus.ann.search(
                vec.reshape(1, -1), weights.depth, allowed=other[corpus.chunk_article]
            )
            cands = Candidates(
                language="*",
                fallback=True,
                dense=[(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0],
            )
            cross_ranked = [h.article_id for h in fuse(corpus, cands, k=10, mode=Mode.dense, weights=weights)]
        s_hit, s_rr = _rank_metrics(service_ranked, q.relevant, k)
        c_hit, c_rr = _rank_metrics(cross_ranked, q.relevant, k)
        row = rows.setdefault(
            q.language,
            {
                "n": 0,
                "s_hit": 0,
                "s_rr": 0,
                "c_hit": 0,
                "c_rr": 0,
                "own": 0,
                "fb": 0,
                "own_n": 0,
                "own_first": 0,
            },
        )
        row["n"] += 1
        row["s_hit"] += s_hit
        row["s_rr"] += s_rr
        row["c_hit"] += c_hit
        row["c_rr"] += c_rr
        row["own"] += sum(1 for h in result.hits[:k] if language_of(h.locale) == q.language)
        own_relevant = {a for a in q.relevant if corpus_language.get(a) == q.language}
        if own_relevant:  # an answer exists in the customer's language: is it the first hit?
            row["own_n"] += 1
            row["own_first"] += bool(service_ranked) and service_ranked[0] in own_relevant
        row["fb"] += result.fallback
        details.append(
            {
                "id": q.qid,
                "language": q.language,
                "text": q.text,
                "relevant": sorted(q.relevant),
                "service": service_ranked[:k],
                "service_fallback": result.fallback,
                "cross_only": cross_ranked[:k],
            }
        )

    def summary(r: dict[str, float]) -> dict:
        n = r["n"]
        return {
            "queries": int(n),
            f"service_recall@{k}": round(r["s_hit"] / n, 4),
            "service_mrr@10": round(r["s_rr"] / n, 4),
            f"cross_only_recall@{k}": round(r["c_hit"] / n, 4),
            "cross_only_mrr@10": round(r["c_rr"] / n, 4),
            f"articles_in_language@{k}": int(r["own"]),
            "fallback": int(r["fb"]),
            "own_language_answerable": int(r["own_n"]),
            "own_language_first": round(r["own_first"] / r["own_n"], 4) if r["own_n"] else None,
        }

    total: dict[str, float] = {}
    for r in rows.values():
        for key, value in r.items():
            total[key] = total.get(key, 0) + value
    return {
        "model": embedder.model_id,
        "articles": len(articles),
        "article_languages": sorted(corpus.languages),
        "queries": len(queries),
        "k": k,
        "language_gap": weights.language_gap,
        "per_language": {lang: summary(r) for lang, r in sorted(rows.items())},
        "all": summary(total) if total else {},
        "details": details,
    }


def crosslingual_lines(report: dict) -> list[str]:
    k = report["k"]
    lines = [
        f"{report['queries']} queries in {len(report['per_language'])} languages, "
        f"{report['articles']} articles ({', '.join(report['article_languages'])}), model {report['model']}",
        f"  {'lang':5s} {'n':>3s} {'svc R@' + str(k):>9s} {'svc MRR':>8s} {'xl R@' + str(k):>8s} "
        f"{'xl MRR':>7s} {'fallback':>8s} {'own 1st':>9s}",
    ]
    for lang, m in [*report["per_language"].items(), ("all", report["all"])]:
        lines.append(
            f"  {lang:5s} {m['queries']:3d} {m[f'service_recall@{k}']:9.3f} {m['service_mrr@10']:8.3f} "
            f"{m[f'cross_only_recall@{k}']:8.3f} {m['cross_only_mrr@10']:7.3f} {m['fallback']:8d} "
            f"{_own_first(m):>9s}"
        )
    return lines


def _own_first(m: dict) -> str:
    share = m.get("own_language_first")
    return "-" if share is None else f"{share:.2f}/{m['own_language_answerable']}"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m eval.retrieval --crosslingual [--data FILE] [--out FILE]`: the cross-lingual report with
    the configured encoder (REPLYDESK_EMBEDDING_MODEL) over the configured articles."""
    import argparse

    from service.embeddings import build_embedder
    from service.kb.articles import load_articles
    from service.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m eval.retrieval")
    parser.add_argument("--crosslingual", action="store_true", required=True)
    parser.add_argument("--data", type=Path, default=CROSSLINGUAL_DATA)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--language-gap", type=float, default=None, help="Override FusionWeights.language_gap (tuning)."
    )
    parser.add_argument(
        "--split",
        choices=("all", "dev", "test"),
        default="all",
        help="Seeded halves of the queries (seed 13): tune on dev, report test.",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    embedder = build_embedder(
        settings.embedding_model,
        backend=settings.embedding_backend,
        threads=settings.embedding_threads,
        cache_dir=None,
    )
    weights = FusionWeights(
        dense=settings.kb_dense_weight, bm25=settings.kb_bm25_weight, rrf_k=settings.kb_rrf_k
    )
    if args.language_gap is not None:
        weights = replace(weights, language_gap=args.language_gap)
    queries = load_crosslingual(args.data)
    if args.split != "all":
        dev, test = split_queries([q.qid for q in queries], 0.5, 13)
        keep = set(dev if args.split == "dev" else test)
        queries = [q for q in queries if q.qid in keep]
    report = crosslingual(
        queries,
        load_articles(settings.kb_articles_dir),
        embedder,
        weights=weights,
        k=args.k,
        default_locale=settings.default_locale,
    )
    for line in crosslingual_lines(report):
        print(line)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
