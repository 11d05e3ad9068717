"""Shared fixtures: one real app per test process, on a temporary data directory.

The embedding cache is shared with the working copy (`data/cache`) so repeated runs do not re-embed the same texts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from fastapi.testclient import TestClient  # noqa: E402

from service.api import create_app  # noqa: E402
from service.settings import REPO_ROOT, Settings  # noqa: E402

SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """`../shared/datasets`; CI always has it, so its absence is a failure, not a skip."""
    if not SHARED_DATASETS.is_dir():
        pytest.fail(f"{SHARED_DATASETS} is missing: tests that read public datasets need ../shared beside the repo")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    data_dir = tmp_path_factory.mktemp("replydesk-data")
    return Settings(data_dir=data_dir, cache_dir=REPO_ROOT / "data" / "cache", llm_base_url=None)


@pytest.fixture(scope="session")
def app(settings):
    return create_app(settings)


@pytest.fixture(scope="session")
def client(app):
    with TestClient(app) as c:
        yield c
