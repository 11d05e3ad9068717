"""One API replica in a test: its own container and app over a shared database, as a second `replydesk serve`
process would have (no background loops, no models loaded)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.api import create_app
from service.container import Container
from service.settings import REPO_ROOT, Settings


@contextmanager
def replica(db_url: str, data_dir: Path, **overrides: Any) -> Iterator[tuple[Container, TestClient]]:
    settings = Settings(
        data_dir=data_dir,
        cache_dir=REPO_ROOT / "data" / "cache",
        llm_base_url=None,
        database_url=db_url,
        workers_enabled=False,
        **overrides,
    )
    container = Container(settings)
    try:
        with TestClient(create_app(settings, container=container, warm=False)) as client:
            yield container, client
    finally:
        container.db.dispose()
