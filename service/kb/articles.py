"""Help articles: Markdown files with YAML front matter.

Parsing is lenient on purpose (a missing field becomes empty) so that `lint` can report every problem of a
file at once; whether an article is acceptable is decided by `service.kb.lint`, never here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import frontmatter
import yaml

REQUIRED_FIELDS: tuple[str, ...] = (
    "id",
    "title",
    "locale",
    "intents",
    "tags",
    "url",
    "summary",
    "updated_at",
)
LIST_FIELDS = frozenset({"intents", "tags"})


class ArticleParseError(ValueError):
    """The file is not Markdown with a readable YAML front matter block."""

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.source = source


@dataclass(frozen=True)
class ParsedDoc:
    """One Markdown file as written: raw front matter, body and where the body starts (1-based line)."""

    meta: Mapping[str, Any]
    body: str
    source: str
    body_start_line: int = 1
    has_front_matter: bool = True


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value).strip()


def _as_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, Iterable):
        return tuple(_as_text(v) for v in value if _as_text(v))
    return (_as_text(value),)


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    locale: str
    intents: tuple[str, ...]
    tags: tuple[str, ...]
    url: str
    summary: str
    updated_at: str
    body: str
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: ParsedDoc) -> Article:
        meta = dict(doc.meta)
        extra = {k: v for k, v in meta.items() if k not in REQUIRED_FIELDS}
        return cls(
            id=_as_text(meta.get("id")),
            title=_as_text(meta.get("title")),
            locale=_as_text(meta.get("locale")),
            intents=_as_list(meta.get("intents")),
            tags=_as_list(meta.get("tags")),
            url=_as_text(meta.get("url")),
            summary=" ".join(_as_text(meta.get("summary")).split()),
            updated_at=_as_text(meta.get("updated_at")),
            body=doc.body.strip() + "\n",
            source=doc.source,
            extra=extra,
        )

    @property
    def language(self) -> str:
        """Primary language subtag of the locale (`es-MX` -> `es`)."""
        return language_of(self.locale)

    def front_matter(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "locale": self.locale,
            "intents": list(self.intents),
            "tags": list(self.tags),
            "url": self.url,
            "summary": self.summary,
            "updated_at": self.updated_at,
        }
        data.update({k: v for k, v in self.extra.items() if k not in data})
        return data

    def to_markdown(self) -> str:
        head = yaml.safe_dump(self.front_matter(), sort_keys=False, allow_unicode=True, width=1000).strip()
        return f"---\n{head}\n---\n\n{self.body.strip()}\n"

    @property
    def content_hash(self) -> str:
        """Hash of everything that ends up in the index (front matter and body, not the file path)."""
        payload = json.dumps({"meta": self.front_matter(), "body": self.body}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


def language_of(locale: str | None) -> str:
    return (locale or "").replace("_", "-").split("-")[0].lower()


def parse_markdown(text: str, *, source: str = "<memory>") -> ParsedDoc:
    """Split front matter from body. A file without front matter parses with empty metadata (lint reports
    it)."""
    stripped = text.lstrip("\ufeff")
    if not stripped.startswith("---"):
        return ParsedDoc(meta={}, body=stripped, source=source, body_start_line=1, has_front_matter=False)
    try:
        post = frontmatter.loads(stripped)
    except yaml.YAMLError as exc:
        raise ArticleParseError(f"front matter is not valid YAML: {exc}", source=source) from exc
    if not isinstance(post.metadata, dict):
        raise ArticleParseError("front matter must be a mapping of fields", source=source)
    lines = stripped.splitlines()
    closing = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), 0)
    body_start = closing + 2
    # frontmatter strips leading blank lines of the body; count them back so line numbers point into the file
    rest = lines[closing + 1 :]
    while rest and not rest[0].strip():
        rest.pop(0)
        body_start += 1
    return ParsedDoc(meta=post.metadata, body=post.content, source=source, body_start_line=body_start)


def read_article_file(path: Path) -> ParsedDoc:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ArticleParseError("not UTF-8 text", source=str(path)) from exc
    return parse_markdown(text, source=str(path))


def article_files(root: Path) -> list[Path]:
    """Markdown files under `root` (or `root` itself), skipping hidden files and `_drafts`-style names."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.rglob("*.md")
        if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )


def load_documents(root: Path) -> tuple[list[ParsedDoc], list[ArticleParseError]]:
    docs: list[ParsedDoc] = []
    errors: list[ArticleParseError] = []
    for path in article_files(root):
        try:
            docs.append(read_article_file(path))
        except ArticleParseError as exc:
            errors.append(exc)
    return docs, errors


def load_articles(root: Path) -> list[Article]:
    """Every article under `root`, as parsed (no lint). Unreadable files raise ArticleParseError."""
    docs, errors = load_documents(root)
    if errors:
        raise errors[0]
    return [Article.from_doc(d) for d in docs]


def write_text_atomic(path: Path, text: str) -> None:
    """Write beside the target then rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
