"""API key store: keys are random, only their SHA-256 is kept; lookups are cached briefly in the process.

Authenticating never writes: `last_used_at` is noted in memory and written by a background flush (at most
once per key per `LAST_USED_EVERY`, and on close), so a read answers while the database is write-locked and a
failed flush only delays the timestamp."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from datetime import datetime, timedelta

from limits import parse
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from service.auth.models import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, Principal, Role
from service.clock import Clock, ensure_utc
from service.db import Database
from service.db.models import ApiKey
from service.errors import InvalidInput, NotFound

log = logging.getLogger("replydesk.auth")

KEY_PREFIX = "rdk_"
CACHE_TTL_S = 5.0
LAST_USED_EVERY = timedelta(minutes=1)
FLUSH_EVERY_S = 10.0


def hash_key(raw: str) -> str:
    # Keys carry 256 bits of randomness, so a plain SHA-256 is enough (no need for a slow password hash).
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def validate_rate_limit(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse(value)
    except ValueError as exc:
        raise InvalidInput(
            f"rate limit {value!r} is not like `120/minute`", details={"rate_limit": value}
        ) from exc
    return value


class KeyStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()
        self._used: dict[str, datetime] = {}  # key id -> last use not yet written
        self._written: dict[str, datetime | None] = {}  # key id -> last_used_at as stored
        self._flush_wake = threading.Event()
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None

    def create(self, request: ApiKeyCreate) -> ApiKeyCreated:
        validate_rate_limit(request.rate_limit)
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(
            id="key_" + secrets.token_hex(5),
            name=request.name,
            role=request.role.value,
            key_hash=hash_key(raw),
            prefix=raw[:12],
            rate_limit=request.rate_limit,
            created_at=self.clock.now(),
        )
        with self.db.session() as s:
            s.add(row)
        return ApiKeyCreated(**_read(row).model_dump(), key=raw)

    def list(self, *, include_revoked: bool = True) -> list[ApiKeyRead]:
        with self.db.session() as s:
            q = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
            if not include_revoked:
                q = q.where(ApiKey.revoked_at.is_(None))
            return [_read(r) for r in s.scalars(q)]

    def revoke(self, key_id: str) -> ApiKeyRead:
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = self.clock.now()
            result = _read(row)
        with self._lock:
            self._cache.clear()
        return result

    def authenticate(self, raw: str) -> Principal | None:
        """The principal of a valid, unrevoked key, else None. Reads only; the use is noted for the flush."""
        digest = hash_key(raw)
        now_mono = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[0] > now_mono:
            principal = hit[1]
        else:
            principal = None
            with self.db.session() as s:
                row = s.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one_or_none()
                if row is not None and row.revoked_at is None:
                    principal = Principal(
                        key_id=row.id, name=row.name, role=Role(row.role), rate_limit=row.rate_limit
                    )
                    with self._lock:
                        self._written.setdefault(
                            row.id, ensure_utc(row.last_used_at) if row.last_used_at else None
                        )
            with self._lock:
                self._cache[digest] = (now_mono + CACHE_TTL_S, principal)
        if principal is not None:
            self._note_use(principal.key_id)
        return principal

    def principal_by_id(self, key_id: str) -> Principal | None:
        """The principal of an unrevoked key by its public id (console sessions carry the id, not the key);
        cached like `authenticate`, so a revocation takes effect within CACHE_TTL_S."""
        cache_key = "id:" + key_id
        now_mono = time.monotonic()
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit is not None and hit[0] > now_mono:
            principal = hit[1]
        else:
            principal = None
            with self.db.session() as s:
                row = s.get(ApiKey, key_id)
                if row is not None and row.revoked_at is None:
                    principal = Principal(
                        key_id=row.id, name=row.name, role=Role(row.role), rate_limit=row.rate_limit
                    )
            with self._lock:
                self._cache[cache_key] = (now_mono + CACHE_TTL_S, principal)
        if principal is not None:
            self._note_use(principal.key_id)
        return principal

    def _note_use(self, key_id: str) -> None:
        now = self.clock.now()
        with self._lock:
            written = self._written.get(key_id)
            if written is not None and now - written < LAST_USED_EVERY:
                return
            self._used[key_id] = now
            start = self._flusher is None and not self._closed.is_set()
            if start:
                self._flusher = threading.Thread(target=self._flush_loop, name="replydesk-keys", daemon=True)
        if start and self._flusher is not None:
            self._flusher.start()

    def flush_last_used(self) -> int:
        """Write the noted uses; returns how many keys were updated. A database error keeps them for the next
        flush."""
        with self._lock:
            pending, self._used = self._used, {}
        if not pending:
            return 0
        try:
            with self.db.session() as s:
                for key_id, when in pending.items():
                    s.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when))
        except SQLAlchemyError as exc:
            log.warning("could not record API key use; retrying later", extra={"error": str(exc)})
            with self._lock:
                for key_id, when in pending.items():
                    self._used.setdefault(key_id, when)
            return 0
        with self._lock:
            self._written.update(pending)
        return len(pending)

    def _flush_loop(self) -> None:
        while not self._closed.is_set():
            self._flush_wake.wait(FLUSH_EVERY_S)
            self._flush_wake.clear()
            self.flush_last_used()

    def close(self) -> None:
        """Stop the background flush and write what is pending."""
        self._closed.set()
        self._flush_wake.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
            self._flusher = None
        self.flush_last_used()


def _read(row: ApiKey) -> ApiKeyRead:
    return ApiKeyRead(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        rate_limit=row.rate_limit,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )
