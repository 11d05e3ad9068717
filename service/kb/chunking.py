"""Split articles into retrievable chunks: an overview chunk (title + summary) and one chunk per section.

Each chunk keeps the article title and its heading path ("Returns > Start a return"), both in what is embedded
and in what BM25 indexes, so a section that never repeats the topic ("Tap Start. Choose the items.") is still
found by the topic. Sections longer than `MAX_CHUNK_CHARS` are split between blocks (the embedding model reads
at most 256 word pieces).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from service.kb import markdown
from service.kb.articles import Article

MAX_CHUNK_CHARS = 900


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    article_id: str
    ordinal: int
    title: str
    heading_path: tuple[str, ...]
    text: str
    language: str

    @property
    def section(self) -> str:
        """Heading path as shown to people (`""` for the overview chunk)."""
        return " > ".join(self.heading_path)

    @property
    def embed_text(self) -> str:
        head = f"{self.title} - {self.section}" if self.heading_path else self.title
        return f"{head}\n{self.text}".strip()

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.embed_text.encode()).hexdigest()

    def to_json(self) -> dict:
        return {
            "chunk_id": self.chunk_id,
            "article_id": self.article_id,
            "ordinal": self.ordinal,
            "title": self.title,
            "heading_path": list(self.heading_path),
            "text": self.text,
            "language": self.language,
            "hash": self.content_hash,
        }

    @classmethod
    def from_json(cls, data: dict) -> Chunk:
        return cls(
            chunk_id=data["chunk_id"],
            article_id=data["article_id"],
            ordinal=int(data["ordinal"]),
            title=data["title"],
            heading_path=tuple(data["heading_path"]),
            text=data["text"],
            language=data["language"],
        )


def _sections(body: str, title: str) -> list[tuple[tuple[str, ...], list[str]]]:
    """(heading path, text blocks) per section, in document order."""
    tokens = markdown.parse(body)
    sections: list[tuple[tuple[str, ...], list[str]]] = [((), [])]
    stack: list[tuple[int, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            level = int(tok.tag[1])
            heading = markdown.inline_text(tokens[i + 1])
            while stack and stack[-1][0] >= level:
                stack.pop()
            if not (level == 1 and heading.strip().lower() == title.strip().lower()):
                stack.append((level, heading))
            sections.append((tuple(h for _, h in stack), []))
            i += 3
            continue
        if tok.type == "inline":
            text = markdown.inline_text(tok)
            if text:
                sections[-1][1].append(text)
        elif tok.type in ("fence", "code_block"):
            sections[-1][1].append(tok.content.strip())
        i += 1
    return [(path, blocks) for path, blocks in sections if blocks]


def _windows(blocks: list[str], limit: int) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    size = 0
    for block in blocks:
        if current and size + len(block) > limit:
            out.append("\n".join(current))
            current, size = [], 0
        current.append(block)
        size += len(block) + 1
    if current:
        out.append("\n".join(current))
    return out


def chunk_article(article: Article, *, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    chunks: list[Chunk] = []

    def add(path: tuple[str, ...], text: str) -> None:
        chunks.append(
            Chunk(
                chunk_id=f"{article.id}#{len(chunks)}",
                article_id=article.id,
                ordinal=len(chunks),
                title=article.title,
                heading_path=path,
                text=text,
                language=article.language,
            )
        )

    add((), article.summary)
    for path, blocks in _sections(article.body, article.title):
        for text in _windows(blocks, max_chars):
            add(path, text)
    return chunks


def chunk_articles(articles: list[Article]) -> list[Chunk]:
    return [c for a in articles for c in chunk_article(a)]
