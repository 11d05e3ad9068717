"""Knowledge base capability: the `KnowledgeBase` component, its schemas and the /v1/kb endpoints.

The articles themselves (Markdown with YAML front matter) live in `kb_index/articles/` by default
(`Settings.kb_articles_dir`). Modules, lowest first:
  markdown   -> Markdown parsing helpers (markdown-it tokens, slugs, inline text)
  articles   -> parse/serialise Markdown articles with YAML front matter
  lint       -> mobile-friendliness and consistency checks (intents from the triage taxonomy)
  chunking   -> one chunk per section, title and heading path kept
  lexical    -> per-language BM25 (bm25s + Snowball stemmers)
  ann        -> FAISS index choice (exact / IVF / HNSW) with recall-tuned search parameters
  retrieval  -> hybrid dense + BM25 search fused by reciprocal rank fusion, article-level results
  store      -> the index builder (incremental build, versioned atomic publish) and validated loading
  models     -> API schemas (articles, search hits, the build report `BuildRead`)
  service    -> `KnowledgeBase`: search, read, edit and rebuild, with hot reload of the published index
  for_triage -> which articles a triaged message gets
  router     -> /v1/kb endpoints
"""
