"""Incremental index build, versioned atomic publish and validated loading.

On-disk layout of the index directory:

    CURRENT                      name of the version in use (replaced atomically with os.replace)
    versions/<build_id>/         one complete, immutable build
        manifest.json            model id, dimension, index type + tuned parameters, build time, per-article
                                 content hash and chunk range (chunk -> article), file sizes and sha256
        index.faiss              FAISS index (position i = chunk i)
        vectors.npy              chunk vectors, reused by the next build for chunks whose text did not change
        chunks.jsonl             chunk records (id, article, heading path, text, content hash)
        articles.jsonl           the articles as indexed (front matter + body)
    .lock                        advisory lock: one build at a time, across processes

A build writes a new version beside the current one (under a temporary name), loads it back to check it,
renames it into `versions/`, and only then points CURRENT at it. Readers resolve CURRENT once per load, so
they always see a whole version; a build that fails at any step leaves CURRENT untouched. Old versions are
deleted, keeping a few so that a process still holding an older one can finish.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from service.embeddings import Embedder, encode_passages
from service.kb import ann as ann_mod
from service.kb.articles import Article, ArticleParseError, load_documents, write_text_atomic
from service.kb.chunking import Chunk, chunk_articles
from service.kb.lint import LintIssue, Severity, errors_of, lint_documents
from service.kb.models import BuildRead
from service.kb.retrieval import Corpus

log = logging.getLogger("replydesk.kb.store")

FORMAT_VERSION = 1
KEEP_VERSIONS = 3
EMBED_BATCH = 64
MANIFEST = "manifest.json"
FILES = ("index.faiss", "vectors.npy", "chunks.jsonl", "articles.jsonl")

Progress = Callable[[str, int, int], None]


class IndexNotBuilt(Exception):
    """No index has been published in this directory yet."""


class IndexCorrupt(Exception):
    """The published index cannot be used (missing file, bad checksum, wrong model, unreadable FAISS data)."""


class BuildRejected(Exception):
    """The articles do not pass lint; nothing was published."""

    def __init__(self, message: str, issues: list[LintIssue]) -> None:
        super().__init__(message)
        self.issues = issues


@dataclass(frozen=True)
class BuildOptions:
    index_type: str = "auto"
    flat_max: int = ann_mod.DEFAULT_FLAT_MAX
    recall_target: float = 0.95
    known_intents: Collection[str] | None = None
    help_base_url: str | None = None
    allowed_link_hosts: str = ""  # comma-separated, see `service.kb.links`
    skip_invalid: bool = False
    force: bool = False


@dataclass
class Snapshot:
    """One loaded version: the searchable corpus plus its manifest."""

    corpus: Corpus
    manifest: dict
    version_dir: Path

    @property
    def build_id(self) -> str:
        return str(self.manifest["build_id"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def current_version(index_dir: Path) -> str | None:
    pointer = Path(index_dir) / "CURRENT"
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def read_manifest(index_dir: Path) -> dict:
    """Manifest of the version in use; IndexNotBuilt / IndexCorrupt when there is none or it is unreadable."""
    name = current_version(index_dir)
    if name is None:
        raise IndexNotBuilt(f"no index published in {index_dir}; run `replydesk kb build`")
    path = Path(index_dir) / "versions" / name / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexCorrupt(f"CURRENT points to {name}, which has no manifest") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"manifest of {name} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise IndexCorrupt(f"manifest of {name} has an unknown format")
    return manifest


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _article_from_json(data: dict) -> Article:
    return Article(
        id=data["id"],
        title=data["title"],
        locale=data["locale"],
        intents=tuple(data["intents"]),
        tags=tuple(data["tags"]),
        url=data["url"],
        summary=data["summary"],
        updated_at=data["updated_at"],
        body=data["body"],
        source=data.get("source", ""),
        extra=data.get("extra", {}),
    )


def _article_to_json(article: Article) -> dict:
    return {
        "id": article.id,
        "title": article.title,
        "locale": article.locale,
        "intents": list(article.intents),
        "tags": list(article.tags),
        "url": article.url,
        "summary": article.summary,
        "updated_at": article.updated_at,
        "body": article.body,
        "source": article.source,
        "extra": dict(article.extra),
    }


def load_version(
    version_dir: Path,
    *,
    model_id: str | None = None,
    dimension: int | None = None,
    verify_checksums: bool = True,
) -> Snapshot:
    """Load and validate one version directory. Raises IndexCorrupt on any inconsistency."""
    version_dir = Path(version_dir)
    try:
        manifest = json.loads((version_dir / MANIFEST).read_text(encoding="utf-8"))
        for name in FILES:
            path = version_dir / name
            expected = manifest["files"][name]
            if path.stat().st_size != expected["bytes"]:
                raise IndexCorrupt(
                    f"{name} has {path.stat().st_size} bytes, the manifest says {expected['bytes']}"
                )
            if verify_checksums and _sha256(path) != expected["sha256"]:
                raise IndexCorrupt(f"{name} does not match its checksum")
        if model_id is not None and manifest["model_id"] != model_id:
            raise IndexCorrupt(
                f"index was built with {manifest['model_id']}, the service embeds with {model_id}; "
                "rebuild it with `replydesk kb build`"
            )
        if dimension is not None and int(manifest["dimension"]) != dimension:
            raise IndexCorrupt(f"index dimension {manifest['dimension']} != embedding dimension {dimension}")
        articles = [_article_from_json(a) for a in _read_jsonl(version_dir / "articles.jsonl")]
        chunks = [Chunk.from_json(c) for c in _read_jsonl(version_dir / "chunks.jsonl")]
        ann = ann_mod.read(str(version_dir / "index.faiss"), manifest["index_type"], manifest["index_params"])
        vectors = np.load(version_dir / "vectors.npy", mmap_mode="r")
        if ann.index.d != int(manifest["dimension"]) or vectors.shape != (len(chunks), ann.index.d):
            raise IndexCorrupt("index, vectors and chunk list do not have matching shapes")
        corpus = Corpus(articles, chunks, vectors, ann)
    except IndexCorrupt:
        raise
    except FileNotFoundError as exc:
        raise IndexCorrupt(f"{version_dir.name}: missing file {Path(exc.filename or '').name}") from exc
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
        # RuntimeError: FAISS cannot read the index file; ValueError: bad JSON / shapes;
        # KeyError: manifest fields
        raise IndexCorrupt(f"{version_dir.name}: {type(exc).__name__}: {exc}") from exc
    return Snapshot(corpus=corpus, manifest=manifest, version_dir=version_dir)


def load_current(index_dir: Path, *, model_id: str | None = None, dimension: int | None = None) -> Snapshot:
    name = current_version(index_dir)
    if name is None:
        raise IndexNotBuilt(f"no index published in {index_dir}; run `replydesk kb build`")
    return load_version(Path(index_dir) / "versions" / name, model_id=model_id, dimension=dimension)


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Exclusive advisory lock on the index directory (blocks until other builders are done)."""
    Path(index_dir).mkdir(parents=True, exist_ok=True)
    with (Path(index_dir) / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _previous(index_dir: Path, model_id: str, dimension: int) -> tuple[dict, dict[str, np.ndarray]]:
    """Manifest of the current version and its vectors by chunk hash (empty if unusable or another model)."""
    try:
        manifest = read_manifest(index_dir)
        if manifest["model_id"] != model_id or int(manifest["dimension"]) != dimension:
            return manifest, {}
        version = Path(index_dir) / "versions" / manifest["build_id"]
        chunks = _read_jsonl(version / "chunks.jsonl")
        vectors = np.load(version / "vectors.npy")
        if len(vectors) != len(chunks):
            return manifest, {}
        return manifest, {c["hash"]: vectors[i] for i, c in enumerate(chunks)}
    except (IndexNotBuilt, IndexCorrupt, FileNotFoundError, KeyError, ValueError, OSError) as exc:
        log.info("no reusable previous index (%s); embedding everything", exc)
        return {}, {}


def collect_articles(articles_dir: Path, options: BuildOptions) -> tuple[list[Article], dict[str, list[str]]]:
    """Parse and lint the articles. Errors reject the build, or drop the failing articles with
    `skip_invalid`."""
    docs, parse_errors = load_documents(articles_dir)
    issues = lint_documents(
        docs,
        known_intents=options.known_intents,
        help_base_url=options.help_base_url,
        allowed_link_hosts=options.allowed_link_hosts,
    )
    bad: dict[str, list[str]] = {}
    for err in parse_errors:
        bad.setdefault(err.source, []).append(str(err))
    for issue in errors_of(issues):
        bad.setdefault(issue.source, []).append(str(issue))
    if bad and not options.skip_invalid:
        flat = errors_of(issues) + [
            LintIssue(rule="unreadable", severity=Severity.error, message=str(e), source=e.source, line=1)
            for e in parse_errors
        ]
        raise BuildRejected(f"{len(bad)} article file(s) fail lint; nothing was published", flat)
    articles = [Article.from_doc(d) for d in docs if d.source not in bad]
    return articles, bad


def _encode_in_batches(embedder: Embedder, texts: list[str], progress: Progress) -> np.ndarray:
    out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    progress("embed", 0, len(texts))
    for start in range(0, len(texts), EMBED_BATCH):
        batch = texts[start : start + EMBED_BATCH]
        out[start : start + len(batch)] = encode_passages(embedder, batch)  # e5: "passage: "
        progress("embed", start + len(batch), len(texts))
    return out


def _noop(stage: str, done: int, total: int) -> None:
    return None


def _new_build_id() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + os.urandom(3).hex()


def build_index(
    articles_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    options: BuildOptions = BuildOptions(),
    progress: Progress | None = None,
) -> BuildRead:
    """Incrementally (re)build and publish the index of `articles_dir` into `index_dir`.

    Only chunks whose text is not in the current version are embedded; when nothing changed (same article
    hashes, model and index type) nothing is published unless `options.force`.

    The knowledge base's only index builder: `KnowledgeBase.build` calls it with the settings' options, and
    every build goes through that (`replydesk kb build`, the API's edits and reindex, the reload benchmark).
    """
    progress = progress or _noop
    t0 = time.perf_counter()
    articles, skipped = collect_articles(articles_dir, options)
    index_dir = Path(index_dir)
    with build_lock(index_dir):
        prev_manifest, reusable = _previous(index_dir, embedder.model_id, embedder.dimension)
        prev_articles: dict[str, dict] = prev_manifest.get("articles_index", {})
        hashes = {a.id: a.content_hash for a in articles}
        added = sorted(a for a in hashes if a not in prev_articles)
        updated = sorted(a for a in hashes if a in prev_articles and prev_articles[a]["hash"] != hashes[a])
        removed = sorted(a for a in prev_articles if a not in hashes)
        chunks = chunk_articles(articles)
        kind = ann_mod.choose_type(len(chunks), options.index_type, flat_max=options.flat_max)
        same = (
            reusable
            and not added
            and not updated
            and not removed
            and prev_manifest.get("index_type") == str(kind)
            and not options.force
        )
        report = BuildRead(
            build_id=prev_manifest.get("build_id", ""),
            published=False,
            articles=len(articles),
            chunks=len(chunks),
            added=added,
            updated=updated,
            removed=removed,
            unchanged=len(articles) - len(added) - len(updated),
            skipped=skipped,
            index_type=str(kind),
            duration_s=0.0,
        )
        if same:
            report.reused_chunks = len(chunks)
            report.duration_s = round(time.perf_counter() - t0, 3)
            return report
        missing = [i for i, c in enumerate(chunks) if c.content_hash not in reusable]
        fresh = _encode_in_batches(embedder, [chunks[i].embed_text for i in missing], progress)
        vectors = np.zeros((len(chunks), embedder.dimension), dtype=np.float32)
        fresh_at = dict(zip(missing, range(len(missing)), strict=True))
        for i, chunk in enumerate(chunks):
            vectors[i] = fresh[fresh_at[i]] if i in fresh_at else reusable[chunk.content_hash]
        ann = ann_mod.build(
            vectors, kind, flat_max=options.flat_max, recall_target=options.recall_target, progress=progress
        )
        build_id = _new_build_id()
        manifest: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "build_id": build_id,
            "built_at": dt.datetime.now(dt.UTC).isoformat(),
            "model_id": embedder.model_id,
            "dimension": int(embedder.dimension),
            "index_type": str(ann.index_type),
            "index_params": ann.params,
            "chunks": len(chunks),
            "articles": len(articles),
            "languages": sorted({a.language for a in articles}),
            "articles_index": {},
            "build": {"embedded_chunks": len(missing), "reused_chunks": len(chunks) - len(missing)},
        }
        first = 0
        for article in articles:
            count = sum(1 for c in chunks if c.article_id == article.id)
            manifest["articles_index"][article.id] = {
                "hash": hashes[article.id],
                "first_chunk": first,
                "chunk_count": count,
                "source": Path(article.source).name,
            }
            first += count
        manifest["articles"] = len(articles)
        _publish(index_dir, build_id, manifest, ann, vectors, chunks, articles, progress)
        report.build_id = build_id
        report.published = True
        report.embedded_chunks = len(missing)
        report.reused_chunks = len(chunks) - len(missing)
        report.index_type = str(ann.index_type)
        report.duration_s = round(time.perf_counter() - t0, 3)
        return report


def _publish(
    index_dir: Path,
    build_id: str,
    manifest: dict,
    ann: ann_mod.AnnIndex,
    vectors: np.ndarray,
    chunks: list[Chunk],
    articles: list[Article],
    progress: Progress,
) -> None:
    versions = index_dir / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    tmp = versions / f".tmp-{build_id}"
    final = versions / build_id
    tmp.mkdir()
    try:
        progress("write", 0, 1)
        faiss.write_index(ann.index, str(tmp / "index.faiss"))
        np.save(tmp / "vectors.npy", vectors)
        with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as fh:
            for c in chunks:
                fh.write(json.dumps(c.to_json(), ensure_ascii=False) + "\n")
        with (tmp / "articles.jsonl").open("w", encoding="utf-8") as fh:
            for a in articles:
                fh.write(json.dumps(_article_to_json(a), ensure_ascii=False) + "\n")
        manifest["files"] = {
            name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)} for name in FILES
        }
        # manifest.json is written last: a version directory without one is never loaded
        write_text_atomic(tmp / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))
        for path in tmp.iterdir():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
        load_version(tmp, model_id=manifest["model_id"], dimension=manifest["dimension"])  # round trip check
        os.replace(tmp, final)
        write_text_atomic(index_dir / "CURRENT", build_id + "\n")
        progress("write", 1, 1)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _collect_garbage(versions, keep=build_id)


def _collect_garbage(versions: Path, keep: str, n_keep: int = KEEP_VERSIONS) -> None:
    done = sorted(
        (p for p in versions.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name
    )
    for old in [p for p in done if p.name != keep][: max(0, len(done) - n_keep)]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in versions.glob(".tmp-*"):  # a crashed build's leftovers, older than an hour
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)


__all__ = [
    "ArticleParseError",
    "BuildOptions",
    "BuildRejected",
    "IndexCorrupt",
    "IndexNotBuilt",
    "Snapshot",
    "build_index",
    "build_lock",
    "current_version",
    "load_current",
    "load_version",
    "read_manifest",
]
