"""Knowledge base: Markdown help articles, lint, chunking, a FAISS + BM25 index with atomic publish, and retrieval.

Layers, each importable on its own:
  articles  -> parse/serialise Markdown articles with YAML front matter
  lint      -> mobile-friendliness and consistency checks
  chunking  -> one chunk per section, title and heading path kept
  lexical   -> per-language BM25 (bm25s + Snowball stemmers)
  ann       -> FAISS index choice (exact / IVF / HNSW) with recall-tuned search parameters
  store     -> incremental build, versioned atomic publish, loading with validation
  retrieval -> hybrid dense + BM25 search fused by reciprocal rank fusion, article-level results
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_ARTICLES_DIR = Path(__file__).resolve().parent / "articles"
