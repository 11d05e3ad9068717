"""Shared fixtures: one real app per test process, on a temporary data directory.

The embedding cache is shared with the working copy (`data/cache`) so repeated runs do not re-embed the same
texts.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from fastapi.testclient import TestClient  # noqa: E402

from service.api import create_app  # noqa: E402
from service.settings import REPO_ROOT, Settings  # noqa: E402

SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"

# The browser tests' fixtures (live_console, chromium). Registered here, not imported by name in each test
# module: an imported fixture used as a parameter reads as a redefinition (ruff F811), and pytest_plugins in a
# test module is imported too late to have its asserts rewritten. Importing it needs no browser.
pytest_plugins = ["tests.browser_support"]


SLOW_MODULE = "pytestmark = pytest.mark.slow"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A module marked slow as a whole (a line `pytestmark = pytest.mark.slow`) is not even imported when the
    `-m` expression deselects slow tests (`make test-fast`): importing one builds an app or a schema, seconds
    of collection in every worker, only to deselect it all."""
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    markexpr = config.getoption("markexpr", "")
    if not markexpr or not _deselects_slow(markexpr):
        return None
    return any(line.startswith(SLOW_MODULE) for line in collection_path.read_text("utf-8").splitlines())


def _deselects_slow(markexpr: str) -> bool:
    """Whether `markexpr` rejects a test whose only mark is `slow` (pytest's own expression parser)."""
    from _pytest.mark.expression import Expression  # no public API for this; stable since pytest 6

    return not Expression.compile(markexpr).evaluate(lambda name, **_: name == "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reads ../shared/datasets is marked `shared`: `make test` runs it, `make test-fast` not."""
    for item in items:
        if "shared_datasets" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """`../shared/datasets`; CI always has it, so its absence is a failure, not a skip."""
    if not SHARED_DATASETS.is_dir():
        pytest.fail(
            f"{SHARED_DATASETS} is missing: tests that read public datasets need ../shared beside the repo"
        )
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    data_dir = tmp_path_factory.mktemp("replydesk-data")
    return Settings(data_dir=data_dir, cache_dir=REPO_ROOT / "data" / "cache", llm_base_url=None)


@pytest.fixture(scope="session")
def app(settings):
    return create_app(settings)


def _key(app, role: str) -> str:
    """A fresh API key of `role` in the test app's database (own high rate limit: tests are fast clients)."""
    from service.auth.models import ApiKeyCreate

    created = app.state.container.keys.create(
        ApiKeyCreate(name=f"tests-{role}", role=role, rate_limit="100000/minute")
    )
    return created.key


@pytest.fixture(scope="session")
def client(app):
    """TestClient of the real app, sending an admin API key (every route but /health needs a key)."""
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {_key(app, 'admin')}"
        yield c


@pytest.fixture(scope="session")
def anon_client(app, client):
    """Same app, no API key (401 everywhere but /health)."""
    return TestClient(app)


@pytest.fixture(scope="session")
def client_with_role(app, client):
    """`client_with_role("agent")` → TestClient sending a key of that role (one key per role per session)."""
    made: dict[str, TestClient] = {}

    def make(role: str) -> TestClient:
        if role not in made:
            made[role] = TestClient(app, headers={"Authorization": f"Bearer {_key(app, role)}"})
        return made[role]

    return make


# -- storage: every storage test runs on SQLite and on the local PostgreSQL (scripts/postgres.sh)
# -------------------

POSTGRES_URL = os.environ.get(
    "REPLYDESK_TEST_POSTGRES_URL", "postgresql+psycopg://replydesk:replydesk@127.0.0.1:55432/replydesk_test"
)


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory) -> Path:
    from service.db import Database

    path = tmp_path_factory.mktemp("migrated") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    return path


def _drop_database(admin, name: str) -> None:
    """DROP ... WITH (FORCE), retried a few times: a server process that has not taken on its role yet (an
    autovacuum worker, a connection still starting) cannot be terminated by a non-superuser for a moment."""
    import psycopg

    for attempt in range(10):
        try:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == 9:
                raise
            time.sleep(0.5)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, empty database URL. The postgres case FAILS (never skips) when the server is unreachable."""
    if request.param == "sqlite":
        target = tmp_path / "replydesk.db"
        if request.node.get_closest_marker("empty_db") is None:
            # a copy of a database migrated once per test process: the same schema as migrating this one, a
            # tenth of the time (`@pytest.mark.empty_db` for a test that needs to run the migrations itself)
            shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), target)
        yield f"sqlite:///{target}"
        return
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(POSTGRES_URL)
    dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {base.render_as_string(hide_password=True)} is unreachable ({exc}). "
            "Start it with `bash scripts/postgres.sh` (`make test` does) or set REPLYDESK_TEST_POSTGRES_URL."
        )
    name = f"replydesk_t_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            _drop_database(admin, name)


@pytest.fixture
def wf(db_url, tmp_path, app):
    """A workflow harness (tests/workflow_harness.py) on a fresh database: real app, manual clock, keys per
    role."""
    from tests.workflow_harness import harness

    with harness(db_url, tmp_path, app.state.container) as h:
        yield h
