"""The knowledge base's content: the bundled Markdown help articles, `articles/<language>/<id>.md`.

No code lives here; the knowledge base itself (parsing, lint, index, retrieval) is `service.kb`. This package
only exists so that the articles ship with the distribution (`[tool.setuptools.package-data]`).
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_ARTICLES_DIR = Path(__file__).resolve().parent / "articles"
"""The bundled articles (the default `Settings.kb_articles_dir`)."""
