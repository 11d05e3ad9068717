"""Test support for the robustness and fault-injection tests: a real app on its own scratch data directory and
its own copy of the help articles (so PUT/DELETE on articles never touch the repository), plus an admin API
key."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api import create_app
from service.auth.models import ApiKeyCreate
from service.settings import REPO_ROOT, Settings

BAD_INPUTS = Path(__file__).resolve().parent / "data" / "bad_inputs.jsonl"


def isolated_settings(root: Path, **overrides: Any) -> Settings:
    articles = root / "articles"
    if not articles.exists():
        shutil.copytree(REPO_ROOT / "kb_index" / "articles", articles)
    values: dict[str, Any] = {
        "data_dir": root / "data",
        "kb_articles_dir": articles,
        "cache_dir": REPO_ROOT / "data" / "cache",
        "llm_base_url": None,
        "workers_enabled": False,
    }
    values.update(overrides)
    return Settings(**values)


def admin_key(app: FastAPI) -> str:
    created = app.state.container.keys.create(
        ApiKeyCreate(name="robustness-admin", role="admin", rate_limit="1000000/minute")
    )
    return created.key


@dataclass
class LiveApp:
    app: FastAPI
    client: TestClient
    headers: dict[str, str]


def start(settings: Settings, *, build_index: bool = True) -> LiveApp:
    """The real app (lifespan entered) with an index built from the copied articles when asked."""
    app = create_app(settings)
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    if build_index:
        app.state.container.kb.reindex()
    headers = {"Authorization": f"Bearer {admin_key(app)}"}
    client.headers.update(headers)
    return LiveApp(app=app, client=client, headers=headers)


def stop(live: LiveApp) -> None:
    live.client.__exit__(None, None, None)


def load_bad_inputs() -> list[dict]:
    """Rows of `tests/data/bad_inputs.jsonl`: `{"id", "text"}`, `{"id", "repeat", "times"}` (huge) or
    `{"id", "raw_b64"}` (raw request bytes, e.g. invalid UTF-8)."""
    rows = []
    for line in BAD_INPUTS.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if "repeat" in row:
                row["text"] = row["repeat"] * int(row["times"])
            rows.append(row)
    return rows
