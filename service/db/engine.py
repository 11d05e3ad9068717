"""Engine, sessions and migrations. SQLite file by default; PostgreSQL through `REPLYDESK_DATABASE_URL`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import InvalidInput, ServiceUnavailable
from service.redaction import redact

log = logging.getLogger("replydesk.db")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def normalise_url(url: str) -> str:
    """`postgres://` and `postgresql://` mean psycopg 3 here (the driver this project ships)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


MIGRATION_LOCK_KEY = 0x5245504C  # "REPL": the advisory lock every process takes to migrate PostgreSQL


class Database:
    """One engine per process; `session()` is a unit of work committed on success, rolled back on error."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError as exc:
            raise InvalidInput(f"database URL is not a valid SQLAlchemy URL: {redact(str(exc))}") from exc
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        elif self.dialect == "postgresql":
            # Never prepare statements on the server: a plan prepared before a migration added an index
            # would keep scanning after it (seen at 1M messages: 822 ms instead of 1 ms until a restart).
            kwargs["connect_args"] = {"prepare_threshold": None}
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._migrated = False
        self._lock = threading.Lock()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    def migrate(self) -> None:
        """`alembic upgrade head`, once per process (idempotent; safe to call at every start)."""
        with self._lock:
            if self._migrated:
                return
            try:
                with self.engine.begin() as conn:
                    if self.dialect == "postgresql":
                        # replicas starting together migrate one after the other (released at commit)
                        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                    cfg = alembic_config(self.url)
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
            except OperationalError as exc:
                raise ServiceUnavailable(
                    f"database {redact(self.url)} is unreachable: {redact(str(exc.orig))}"
                ) from exc
            self._migrated = True
            log.info("database migrated", extra={"database": redact(self.url)})

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("select version_num from alembic_version")).scalar()

    def health(self) -> dict[str, Any]:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("select 1"))
        except OperationalError as exc:
            return {
                "status": "unavailable",
                "detail": {"url": redact(self.url), "error": redact(str(exc.orig))},
            }
        return {
            "status": "ok",
            "detail": {"url": redact(self.url), "dialect": self.dialect, "migrated": self._migrated},
        }

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
