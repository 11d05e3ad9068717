"""The embedding seam's disk cache: batches are reused across processes, live single messages are not kept."""

from __future__ import annotations

import numpy as np
import pytest

from service.embeddings import PERSIST_MIN_BATCH, EmbeddingCache


class CountingEncoder:
    """A deterministic stand-in for a model: one vector per text, and a record of what it was asked."""

    def __init__(self, dim: int = 4) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        vecs = np.array([[len(t), t.count("a"), t.count("e"), 1.0] for t in texts], dtype=np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def test_a_batch_is_persisted_and_a_new_process_does_not_re_embed_it(tmp_path):
    texts = [f"message number {i} about an order" for i in range(PERSIST_MIN_BATCH)]
    enc = CountingEncoder()
    first = EmbeddingCache(tmp_path, "m", 4).encode_through(texts, enc)
    again = EmbeddingCache(tmp_path, "m", 4).encode_through(
        texts, enc
    )  # a fresh cache object reads the shard
    assert len(enc.calls) == 1
    np.testing.assert_array_equal(first, again)


def test_single_live_messages_are_not_kept_so_the_cache_does_not_grow_per_request(tmp_path):
    cache = EmbeddingCache(tmp_path, "m", 4)
    enc = CountingEncoder()
    for i in range(20):
        cache.encode_through([f"customer message {i}"], enc)
    assert cache._mem == {}
    assert not list(tmp_path.rglob("*.npy"))


def test_cached_and_fresh_vectors_come_back_in_the_order_asked(tmp_path):
    cache = EmbeddingCache(tmp_path, "m", 4)
    enc = CountingEncoder()
    batch = [f"known text {i}" for i in range(PERSIST_MIN_BATCH)]
    cache.encode_through(batch, enc)
    mixed = ["a brand new text", batch[3], "another new one", batch[0]]
    out = cache.encode_through(mixed, enc)
    np.testing.assert_allclose(out, enc(mixed))
    assert enc.calls[1] == ["a brand new text", "another new one"]  # only the unknown texts were embedded


def test_a_quantized_models_vector_of_a_message_does_not_depend_on_its_batch():
    # int8 activations are scaled per run: embedded together, texts would shift each other's vectors (cos
    # ~0.99)
    from service.embeddings import BATCH_MIN_TEXTS, MINILM, OnnxEmbedder
    from service.settings import REPO_ROOT

    cache = REPO_ROOT / "data" / "cache" / "embeddings"  # beside the shared ONNX export (no re-export)
    emb = OnnxEmbedder(MINILM, quantize=True, threads=1, batch_threads=2, cache_dir=cache)
    texts = [
        f"where is my order {i}" + " please check it again" * (i % 4) for i in range(BATCH_MIN_TEXTS * 2)
    ]
    one_by_one = np.vstack([emb._raw_encode([t]) for t in texts])
    batched = emb._raw_encode(texts)  # spread over two worker threads
    assert emb._pool is not None
    np.testing.assert_array_equal(batched, one_by_one)


@pytest.mark.slow  # exports and quantizes the model with both backends
def test_each_quantization_has_its_own_model_id_so_indexes_and_caches_never_mix_them():
    # fp32 torch and ONNX give the same vectors and share an id; the two int8 quantizations do not
    from service.embeddings import MINILM, build_embedder
    from service.settings import REPO_ROOT

    cache = REPO_ROOT / "data" / "cache" / "embeddings"
    name = MINILM
    ids = {
        backend: build_embedder(name, backend=backend, cache_dir=cache).model_id
        for backend in ("onnx", "torch", "onnx-int8", "torch-int8")
    }
    assert ids["onnx"] == ids["torch"] == name
    assert len({ids["onnx"], ids["onnx-int8"], ids["torch-int8"]}) == 3
