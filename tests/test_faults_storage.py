"""Fault injection on storage and the index.

Database locked (another process holds the SQLite write lock) or gone (its directory removed): requests answer
a clear 503 with the JSON error body, nothing is half-written, /health says the database is unavailable, and
the service recovers by itself once the database is back.

Index missing or corrupt: the service starts, triage and drafting keep working (drafts without articles),
search answers 503 `index_unavailable`, and /health shows the index as degraded with the reason.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from tests.robustness_harness import LiveApp, isolated_settings, start, stop

SENT_AT = "2026-01-05T09:00:00Z"


def _message(conversation: str) -> dict:
    return {
        "channel": "webchat",
        "conversation_external_id": conversation,
        "customer": {"id": f"c-{conversation}"},
        "text": "Hi, where is my order A12345?",
        "sent_at": SENT_AT,
    }


def _short_busy_timeout(live: LiveApp) -> None:
    """Make lock waits 100 ms instead of 30 s, so a held lock surfaces at once (new connections only)."""
    db = live.app.state.container.db
    event.listen(db.engine, "connect", lambda conn, _record: conn.execute("PRAGMA busy_timeout=100"))
    db.engine.dispose()


@pytest.fixture()
def sqlite_app(tmp_path) -> Iterator[tuple[LiveApp, Path]]:
    live = start(isolated_settings(tmp_path), build_index=False)
    _short_busy_timeout(live)
    yield live, tmp_path / "data" / "replydesk.db"
    stop(live)


def _count(db_file: Path, table: str) -> int:
    with sqlite3.connect(db_file) as con:
        return con.execute(f"select count(*) from {table}").fetchone()[0]  # noqa: S608 (fixed table names)


def test_a_locked_database_is_a_clear_503_and_nothing_is_half_written(sqlite_app):
    live, db_file = sqlite_app
    messages, conversations = _count(db_file, "messages"), _count(db_file, "conversations")
    locker = sqlite3.connect(db_file, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long migration or backup would
    try:
        r = live.client.post("/v1/messages", json=_message("locked-1"))
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "unavailable"
    assert (_count(db_file, "messages"), _count(db_file, "conversations")) == (messages, conversations)
    again = live.client.post("/v1/messages", json=_message("locked-1"))
    assert again.status_code == 201, again.text  # recovered once the lock is gone


def test_a_key_used_for_the_first_time_still_reads_while_the_database_is_write_locked(sqlite_app):
    """Authenticating never writes (`last_used_at` is written later by a background flush)."""
    live, db_file = sqlite_app
    created = live.client.post("/v1/keys", json={"name": "fresh-agent", "role": "agent"}).json()
    locker = sqlite3.connect(db_file, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        r = live.client.get("/v1/suggestions", headers={"Authorization": f"Bearer {created['key']}"})
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert r.status_code == 200, r.text
    keys = live.app.state.container.keys
    assert keys.flush_last_used() >= 1  # the use was noted, and is written once the lock is gone
    listed = {k["id"]: k for k in live.client.get("/v1/keys").json()}
    assert listed[created["id"]]["last_used_at"] is not None


def test_a_database_that_is_gone_is_a_clear_503_and_health_says_unavailable(sqlite_app):
    live, db_file = sqlite_app
    shutil.rmtree(db_file.parent)
    live.app.state.container.db.engine.dispose()  # drop pooled connections to the removed file
    r = live.client.post("/v1/messages", json=_message("gone-1"))
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "unavailable"
    health = live.client.get("/health").json()
    assert health["status"] == "degraded"
    assert health["components"]["database"]["status"] == "unavailable"


@pytest.fixture(scope="module")
def no_index(tmp_path_factory) -> Iterator[LiveApp]:
    live = start(isolated_settings(tmp_path_factory.mktemp("no-index")), build_index=False)
    yield live
    stop(live)


def test_without_an_index_the_service_starts_and_search_is_a_clear_503(no_index):
    r = no_index.client.get("/v1/kb/search", params={"q": "where is my order"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "index_unavailable"
    index = no_index.client.get("/health").json()["components"]["index"]
    assert index["status"] == "degraded"
    assert index["detail"]["reason"]


def test_without_an_index_triage_drafts_and_ingest_still_work(no_index):
    triage = no_index.client.post("/v1/triage", json={"text": "I want to return the lamp I bought"})
    assert triage.status_code == 200 and triage.json()["intent"]["name"] == "return_item"
    drafts = no_index.client.post("/v1/drafts", json={"text": "I want to return the lamp I bought"})
    assert drafts.status_code == 200
    assert drafts.json()["drafts"] and all(not d["cited_article_ids"] for d in drafts.json()["drafts"])
    ingest = no_index.client.post("/v1/messages", json=_message("no-index-1"))
    assert ingest.status_code == 201 and ingest.json()["pipeline"]["status"] == "done"


def test_a_corrupt_index_keeps_the_service_up_with_a_degraded_health(tmp_path):
    settings = isolated_settings(tmp_path)
    live = start(settings, build_index=True)
    try:
        version = max((settings.resolved_index_dir / "versions").iterdir(), key=lambda p: p.stat().st_mtime)
        (version / "index.faiss").write_bytes(b"\x00garbage\x00" * 10)
        (version / "vectors.npy").write_bytes(b"not numpy")
    finally:
        stop(live)
    restarted = start(settings, build_index=False)  # a fresh process finds the damaged files
    try:
        r = restarted.client.get("/v1/kb/search", params={"q": "return an item"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "index_unavailable"
        index = restarted.client.get("/health").json()["components"]["index"]
        assert index["status"] == "degraded"
        drafts = restarted.client.post("/v1/drafts", json={"text": "I want to return the lamp I bought"})
        assert drafts.status_code == 200 and drafts.json()["drafts"]
    finally:
        stop(restarted)
