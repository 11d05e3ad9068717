"""API key store: keys are random, only their SHA-256 is kept; lookups are cached briefly in the process."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import timedelta

from limits import parse
from sqlalchemy import select, update

from service.auth.models import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, Principal, Role
from service.clock import Clock
from service.db import Database
from service.db.models import ApiKey
from service.errors import InvalidInput, NotFound

KEY_PREFIX = "rdk_"
CACHE_TTL_S = 5.0
LAST_USED_EVERY = timedelta(minutes=1)


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
        """The principal of a valid, unrevoked key, else None."""
        digest = hash_key(raw)
        now_mono = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None and hit[0] > now_mono:
                return hit[1]
        principal: Principal | None = None
        with self.db.session() as s:
            row = s.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one_or_none()
            if row is not None and row.revoked_at is None:
                principal = Principal(
                    key_id=row.id, name=row.name, role=Role(row.role), rate_limit=row.rate_limit
                )
                now = self.clock.now()
                if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
                    s.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
        with self._lock:
            self._cache[digest] = (now_mono + CACHE_TTL_S, principal)
        return principal


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
