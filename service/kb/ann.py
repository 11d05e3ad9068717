"""FAISS index choice, build and search-parameter tuning (inner product on L2-normalised vectors = cosine).

- `flat`: exact inner product (IndexFlatIP). Default up to `flat_max` vectors (50k): a query over 50k x 384
  takes about 2 ms on one core, and it is always exact.
- `ivf`: IndexIVFFlat with nlist ~ 4 sqrt(n) lists, k-means (10 iterations) on a sample of 32 vectors per
  list.
- `hnsw`: IndexHNSWFlat, M=32, efConstruction=64.

For `ivf` and `hnsw` the search breadth (nprobe / efSearch) is not guessed: after building, `tune` measures
recall@10 against exact search on a sample of perturbed stored vectors and keeps the smallest breadth whose
recall reaches the target plus a margin. The chosen parameters are stored in the manifest and applied on load.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import cast

import faiss
import numpy as np

DEFAULT_FLAT_MAX = 50_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64
TUNE_MARGIN = 0.02
PROBE_NOISE = 1.0
SINGLE_THREAD_MAX_QUERIES = 8
IVF_TRAIN_PER_LIST = 32  # k-means sample: 32 vectors per list, 10 iterations (~4 min for 1M x 384 on 2 cores)
IVF_TRAIN_ITERATIONS = 10
NPROBE_STEPS = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
EF_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)

Progress = Callable[[str, int, int], None]


class IndexType(StrEnum):
    auto = "auto"
    flat = "flat"
    ivf = "ivf"
    hnsw = "hnsw"


@dataclass
class AnnIndex:
    index: faiss.Index
    index_type: IndexType
    params: dict = field(default_factory=dict)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def apply_params(self) -> None:
        if self.index_type == IndexType.ivf:
            faiss.extract_index_ivf(self.index).nprobe = int(self.params.get("nprobe", 16))
        elif self.index_type == IndexType.hnsw:
            cast(faiss.IndexHNSW, self.index).hnsw.efSearch = int(self.params.get("efSearch", 64))

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions); `allowed` is a bool mask over positions (None = all). -1 marks no
        result.

        A few queries are searched on the calling thread only: OpenMP fan-out costs more than it saves for one
        query, and on a busy 2-core machine its spinning threads made one exact search over 10k vectors ~100x
        slower (48 ms instead of 0.4 ms). OpenMP's thread count is per calling thread, so builds running on
        other threads keep every core.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, self.ntotal))
        if len(queries) > SINGLE_THREAD_MAX_QUERIES:
            return self._search(queries, k, allowed)
        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self._search(queries, k, allowed)
        finally:
            faiss.omp_set_num_threads(previous)

    def _search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if allowed is None:
            return self.index.search(queries, k)
        bits = np.packbits(np.asarray(allowed, dtype=bool), bitorder="little")
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
        # faiss's SWIG wrappers take a parameter object's fields as keywords (and keep `sel` referenced); the
        # stubs bundled with faiss say neither that nor that SearchParametersHNSW exists
        params: faiss.SearchParameters
        if self.index_type == IndexType.ivf:
            nprobe = int(self.params.get("nprobe", 16))
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)  # type: ignore[call-arg]
        elif self.index_type == IndexType.hnsw:
            ef = int(self.params.get("efSearch", 64))
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)  # type: ignore[attr-defined]
        else:
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        scores, ids = self.index.search(queries, k, params=params)
        del bits  # the selector points into `bits`; keep it alive until the search returned
        return scores, ids


def choose_type(
    n: int, requested: IndexType | str = IndexType.auto, *, flat_max: int = DEFAULT_FLAT_MAX
) -> IndexType:
    requested = IndexType(requested)
    if requested != IndexType.auto:
        return requested
    return IndexType.flat if n <= flat_max else IndexType.ivf


def ivf_nlist(n: int) -> int:
    """4 sqrt(n) lists (4000 at 1M): finer lists scan less for the same recall (at 1M x 384 on clustered
    data, sqrt(n) lists needed nprobe 192 = 19% of the data and 21 ms per query; 4 sqrt(n) needs 128-192 of
    4000)."""
    return int(min(65536, max(1, round(4 * math.sqrt(n)))))


def _noop(stage: str, done: int, total: int) -> None:
    return None


def build(
    vectors: np.ndarray,
    index_type: IndexType | str = IndexType.auto,
    *,
    flat_max: int = DEFAULT_FLAT_MAX,
    recall_target: float = 0.95,
    seed: int = 0,
    progress: Progress | None = None,
    hnsw_m: int = HNSW_M,
    hnsw_ef_construction: int = HNSW_EF_CONSTRUCTION,
) -> AnnIndex:
    """Build the index of `vectors` (positions = row numbers) and tune its search breadth."""
    progress = progress or _noop
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    kind = choose_type(n, index_type, flat_max=flat_max)
    if kind == IndexType.ivf and n < 2:
        kind = IndexType.flat
    batch = 50_000
    if kind == IndexType.flat:
        index: faiss.Index = faiss.IndexFlatIP(dim)
        params: dict = {}
    elif kind == IndexType.ivf:
        nlist = min(ivf_nlist(n), n)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = vectors[np.sort(rng.choice(n, size=min(n, IVF_TRAIN_PER_LIST * nlist), replace=False))]
        progress("train", 0, 1)
        index.cp.seed = seed
        index.cp.niter = IVF_TRAIN_ITERATIONS
        index.cp.min_points_per_centroid = min(IVF_TRAIN_PER_LIST, max(1, n // nlist))
        index.train(sample)
        progress("train", 1, 1)
        params = {"nlist": nlist, "nprobe": min(16, nlist)}
    else:
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = hnsw_ef_construction
        params = {"M": hnsw_m, "efConstruction": hnsw_ef_construction, "efSearch": 64}
    for start in range(0, n, batch):
        index.add(vectors[start : start + batch])
        progress("add", min(n, start + batch), n)
    ann = AnnIndex(index=index, index_type=kind, params=params)
    if kind != IndexType.flat:
        tune(ann, vectors, recall_target=recall_target, seed=seed)
        progress("tune", 1, 1)
    ann.apply_params()
    return ann


def probe_queries(
    vectors: np.ndarray, count: int, *, seed: int = 0, noise: float = PROBE_NOISE
) -> np.ndarray:
    """Queries near the data: stored vectors plus Gaussian noise, re-normalised.

    With noise 1.0 a probe's nearest stored vector is at cosine ~0.7, like fresh queries of the benchmark
    mixture. Closer probes (noise 0.7, cosine ~0.8) overestimated HNSW recall (0.976 on probes, 0.94 on fresh
    queries at efSearch 16); farther ones (noise 1.5) were so hard that IVF at 1M was tuned to nprobe 384
    (recall 0.989 on fresh queries, 12 ms) where 192 already gives 0.97 (7 ms). The 0.02 margin over the
    target covers the rest.
    """
    rng = np.random.default_rng(seed + 1)
    n, dim = vectors.shape
    rows = vectors[rng.choice(n, size=min(count, n), replace=False)]
    noisy = rows + rng.standard_normal(rows.shape).astype(np.float32) * (noise / math.sqrt(dim))
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    _, ids = faiss.knn(
        np.ascontiguousarray(queries), np.ascontiguousarray(vectors), k, metric=faiss.METRIC_INNER_PRODUCT
    )
    return ids


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    hits = sum(len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / float(truth.size)


def tune(
    ann: AnnIndex,
    vectors: np.ndarray,
    *,
    recall_target: float = 0.95,
    k: int = 10,
    queries: int = 200,
    seed: int = 0,
) -> dict:
    """Smallest nprobe / efSearch whose recall@k on probe queries reaches `recall_target + TUNE_MARGIN`."""
    probes = probe_queries(vectors, queries, seed=seed)
    k = min(k, len(vectors))
    truth = exact_neighbours(vectors, probes, k)
    goal = min(0.995, recall_target + TUNE_MARGIN)
    if ann.index_type == IndexType.ivf:
        name, steps = "nprobe", [s for s in NPROBE_STEPS if s <= ann.params["nlist"]] or [ann.params["nlist"]]
    else:
        name, steps = "efSearch", [s for s in EF_STEPS if s >= k]
    measured: list[dict] = []
    for value in steps:
        ann.params[name] = value
        ann.apply_params()
        t0 = time.perf_counter()
        _, found = ann.index.search(probes, k)
        elapsed = (time.perf_counter() - t0) / len(probes)
        rec = recall_at_k(found, truth)
        measured.append({name: value, "recall": round(rec, 4), "ms_per_query": round(elapsed * 1000, 3)})
        if rec >= goal:
            break
    ann.params["tuned_recall_at_10"] = measured[-1]["recall"]
    ann.params["recall_target"] = recall_target
    return {"chosen": ann.params[name], "measured": measured}


def write(ann: AnnIndex, path: str) -> None:
    faiss.write_index(ann.index, path)


def read(path: str, index_type: IndexType | str, params: dict) -> AnnIndex:
    index = faiss.read_index(path)
    ann = AnnIndex(index=index, index_type=IndexType(index_type), params=dict(params))
    ann.apply_params()
    return ann
