"""Benchmarks of the knowledge base index: ANN index types at scale, and hot-reload latency.

Synthetic vectors (`gaussian_mixture`): real sentence embeddings are clustered and of low intrinsic dimension;
uniform random vectors would make every index type look worse than on real data, and well-separated clusters
would make IVF look too good (with one tight cluster per list it needed nprobe=2 at 1M). So vectors live in a
random 48-dimensional (at most dim/2) subspace of the model's space: K = n/100 cluster centres (at least 8) on
the unit sphere of that subspace, each point its centre plus a Gaussian of norm ~0.8 (clusters overlap their
neighbours), plus isotropic noise of norm ~0.3 in the full space, L2-normalised. Queries are fresh draws from
the same mixture, never stored vectors. A query's 10th neighbour is then at cosine ~0.67 and its first at
~0.72: crowded neighbourhoods, as with FAQ-style texts, and IVF needs nprobe 16-32 for 0.95 recall@10 at 100k.

Each index type is built with the same code the knowledge base uses (`service.kb.ann.build`, which tunes
nprobe / efSearch to the recall target on probe queries) and measured on the bench queries against exact
search: recall@10, single-query latency p50/p95 (one query at a time, as a live request), build time and
memory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

from service.kb import ann as ann_mod

LOW_RANK = 48
SPREAD = 0.8
NOISE = 0.3
GEN_BATCH = 100_000

Log = Callable[[str], None]


def gaussian_mixture(
    n: int, dim: int, *, seed: int = 0, clusters: int | None = None, centres_seed: int = 1234
) -> np.ndarray:
    """n L2-normalised vectors from the clustered low-rank mixture described above (deterministic per seed).

    The centres and the subspace depend only on (`centres_seed`, number of clusters), so data and queries
    drawn with different `seed`s come from the same mixture.
    """
    k = clusters or max(8, n // 100)
    rank = min(LOW_RANK, dim // 2)
    crng = np.random.default_rng(centres_seed + k)
    basis, _ = np.linalg.qr(crng.standard_normal((dim, rank), dtype=np.float32))
    centres = crng.standard_normal((k, rank), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, GEN_BATCH):
        m = min(GEN_BATCH, n - start)
        labels = rng.integers(0, k, size=m)
        h = centres[labels] + rng.standard_normal((m, rank), dtype=np.float32) * (SPREAD / math.sqrt(rank))
        x = h @ basis.T + rng.standard_normal((m, dim), dtype=np.float32) * (NOISE / math.sqrt(dim))
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _rss_mb() -> float:
    """Resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0


def index_bytes(ann: ann_mod.AnnIndex) -> int:
    """Memory held by the index structures (vectors, lists, graph links)."""
    index = ann.index
    n, d = int(index.ntotal), int(index.d)
    if ann.index_type == ann_mod.IndexType.flat:
        return n * d * 4
    if ann.index_type == ann_mod.IndexType.ivf:
        ivf = faiss.extract_index_ivf(index)
        return n * (d * 4 + 8) + int(ivf.nlist) * d * 4
    hnsw: Any = cast(faiss.IndexHNSW, index).hnsw  # faiss's stubs lack `neighbors` and `offsets`
    return (
        n * d * 4
        + int(hnsw.neighbors.size()) * 4
        + int(hnsw.levels.size()) * 4
        + int(hnsw.offsets.size()) * 8
    )


def _latencies(
    ann: ann_mod.AnnIndex, queries: np.ndarray, k: int
) -> tuple[list[float], list[float], np.ndarray]:
    """Per-query wall time and CPU time of this thread (single-query search runs on the calling thread only).

    Wall time includes time the OS gave the cores to other processes; on a shared machine its p95 measures the
    neighbours. CPU time is what the search itself costs, i.e. its latency on 2 cores of its own.
    """
    found = np.empty((len(queries), k), dtype=np.int64)
    wall, cpu = [], []
    for i in range(len(queries)):
        c0, t0 = time.thread_time(), time.perf_counter()
        _, ids = ann.search(queries[i : i + 1], k)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
        found[i] = ids[0]
    return wall, cpu, found


def run_ann_bench(
    sizes: list[int],
    dim: int,
    *,
    types: list[str],
    queries: int = 200,
    k: int = 10,
    recall_target: float = 0.95,
    hnsw_max: int = 1_000_000,
    seed: int = 0,
    log: Log = print,
) -> dict:
    results = []
    for n in sizes:
        t0 = time.perf_counter()
        data = gaussian_mixture(n, dim, seed=seed)
        q = gaussian_mixture(queries, dim, seed=seed + 99, clusters=max(8, n // 100))
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        truth = ann_mod.exact_neighbours(data, q, k)
        log(
            f"n={n:,}: generated in {gen_s:.1f}s, exact top-{k} of {queries} queries in "
            f"{time.perf_counter() - t0:.1f}s"
        )
        for kind in types:
            row: dict = {"n": n, "dim": dim, "index_type": kind}
            if kind == "hnsw" and n > hnsw_max:
                row["skipped"] = f"HNSW build above {hnsw_max:,} vectors exceeds the time bound on 2 cores"
                results.append(row)
                log(f"  {kind:5s} skipped ({row['skipped']})")
                continue
            gc.collect()
            rss0 = _rss_mb()
            t0 = time.perf_counter()
            ann = ann_mod.build(data, kind, recall_target=recall_target, seed=seed)
            build_s = time.perf_counter() - t0
            rss1 = _rss_mb()
            times, cpu_times, found = _latencies(ann, q, k)
            row.update(
                {
                    "params": {key: v for key, v in ann.params.items()},
                    "build_s": round(build_s, 2),
                    "index_mb": round(index_bytes(ann) / 2**20, 1),
                    "rss_growth_mb": round(max(0.0, rss1 - rss0), 1),
                    "query_ms": {
                        "p50": round(float(np.percentile(times, 50)), 3),
                        "p95": round(float(np.percentile(times, 95)), 3),
                    },
                    "query_cpu_ms": {
                        "p50": round(float(np.percentile(cpu_times, 50)), 3),
                        "p95": round(float(np.percentile(cpu_times, 95)), 3),
                    },
                    f"recall@{k}": round(ann_mod.recall_at_k(found, truth), 4),
                }
            )
            results.append(row)
            log(
                f"  {kind:5s} build {build_s:6.1f}s  mem {row['index_mb']:7.1f} MB  wall p50/p95 "
                f"{row['query_ms']['p50']:.3f}/{row['query_ms']['p95']:.3f} ms  cpu p50/p95 "
                f"{row['query_cpu_ms']['p50']:.3f}/{row['query_cpu_ms']['p95']:.3f} ms  "
                f"recall@{k} {row[f'recall@{k}']:.4f}  {row['params']}"
            )
            del ann
        del data
        gc.collect()
    return {
        "benchmark": "retrieval-ann",
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "faiss_threads": faiss.omp_get_max_threads(),
            "load_average": list(os.getloadavg()),
            "platform": platform.platform(),
            "faiss": faiss.__version__,
        },
        "data": {
            "kind": "gaussian mixture in a random low-rank subspace",
            "clusters": "max(8, n // 100)",
            "rank": LOW_RANK,
            "spread": SPREAD,
            "noise": NOISE,
            "queries": queries,
            "seed": seed,
        },
        "recall_target": recall_target,
        "results": results,
    }


def run_reload_bench(articles_dir: Path, *, rounds: int = 5, log: Log = print) -> dict:
    """Seconds from an article change to search seeing it, for the two ways an article changes.

    - api: `PUT /v1/kb/articles/{id}` through the real app; measured until `GET /v1/kb/search` returns the new
      text (the PUT answers after the new version is published and loaded, so this is the PUT's own duration).
    - file + build: the Markdown file is edited and `KnowledgeBase.build` publishes a new version without
      switching the app to it (what `replydesk kb build` does from another process); measured until the
      running app's search sees the change (hot reload: the app checks CURRENT at most every
      `kb_reload_interval_s`).
    """
    from fastapi.testclient import TestClient

    from service.api import create_app
    from service.kb.articles import Article, read_article_file
    from service.settings import REPO_ROOT, Settings

    work = Path(tempfile.mkdtemp(prefix="replydesk-reload-"))
    try:
        shutil.copytree(articles_dir, work / "articles")
        settings = Settings(
            data_dir=work / "data", kb_articles_dir=work / "articles", cache_dir=REPO_ROOT / "data" / "cache"
        )
        app = create_app(settings, warm=False)
        api_times: list[float] = []
        file_times: list[float] = []
        with TestClient(app) as client:
            from service.auth.models import ApiKeyCreate

            key = app.state.container.keys.create(
                ApiKeyCreate(name="bench-reload", role="admin", rate_limit="100000/minute")
            ).key
            client.headers["Authorization"] = f"Bearer {key}"
            kb = app.state.container.kb
            t0 = time.perf_counter()
            kb.build()
            log(f"initial build: {time.perf_counter() - t0:.2f}s")
            path = work / "articles" / "en" / "late-delivery.md"
            base = Article.from_doc(read_article_file(path))
            for i in range(rounds):
                marker = f"zebracode{i}api"
                body = base.body + f"\n## Carrier code\n\nQuote {marker} when you call the carrier.\n"
                text = dataclasses.replace(base, body=body).to_markdown()
                t0 = time.perf_counter()
                resp = client.put(
                    f"/v1/kb/articles/{base.id}",
                    content=text.encode(),
                    headers={"content-type": "text/markdown"},
                )
                resp.raise_for_status()
                while marker not in client.get("/v1/kb/search", params={"q": marker, "k": 1}).text:
                    time.sleep(0.01)
                api_times.append(time.perf_counter() - t0)
            for i in range(rounds):
                marker = f"zebracode{i}file"
                body = base.body + f"\n## Carrier code\n\nQuote {marker} when you call the carrier.\n"
                path.write_text(dataclasses.replace(base, body=body).to_markdown(), encoding="utf-8")
                t0 = time.perf_counter()
                kb.build()  # publishes only; the app's searches must find the new version by hot reload
                while marker not in client.get("/v1/kb/search", params={"q": marker, "k": 1}).text:
                    time.sleep(0.02)
                file_times.append(time.perf_counter() - t0)
        result = {
            "benchmark": "kb-reload",
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "articles": len(list((work / "articles").rglob("*.md"))),
            "rounds": rounds,
            "reload_interval_s": settings.kb_reload_interval_s,
            "api_upsert_to_visible_s": {
                "max": round(max(api_times), 3),
                "median": round(float(np.median(api_times)), 3),
            },
            "file_build_to_visible_s": {
                "max": round(max(file_times), 3),
                "median": round(float(np.median(file_times)), 3),
            },
        }
        log(json.dumps(result, indent=1))
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
