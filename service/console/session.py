"""Console sign-in: a signed session cookie that names the API key (by id, never the key itself) and CSRF
tokens for every form.

The cookie is signed and time-stamped with itsdangerous; each request re-reads the key by id, so a revoked key
ends its sessions within the key cache's few seconds. CSRF uses the double-submit pattern with a signed token:
a random nonce in its own HttpOnly cookie, and in each form the nonce's HMAC, which a cross-site page can
neither read nor forge."""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, Signer, URLSafeTimedSerializer

log = logging.getLogger("replydesk.console")

SESSION_COOKIE = "rd_session"
EMBED_SESSION_COOKIE = "rd_embed_session"
CSRF_COOKIE = "rd_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class SessionData:
    key_id: str
    nonce: str


def load_or_create_secret(configured: str | None, data_dir: Path) -> str:
    """The configured secret, else one kept in `data_dir` (created once, readable by the owner only)."""
    if configured:
        return configured
    path = data_dir / "console_session.key"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret)
    log.info("created the console session secret", extra={"path": str(path)})
    return secret


class SessionCodec:
    def __init__(self, secret: str, max_age_s: int) -> None:
        self._sessions = URLSafeTimedSerializer(secret, salt="replydesk.console.session")
        self._csrf = Signer(secret, salt="replydesk.console.csrf")
        self.max_age_s = max_age_s

    def issue(self, key_id: str) -> str:
        return self._sessions.dumps({"k": key_id, "n": secrets.token_urlsafe(12)})

    def read(self, cookie: str | None) -> SessionData | None:
        if not cookie:
            return None
        try:
            data = self._sessions.loads(cookie, max_age=self.max_age_s)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("k"), str):
            return None
        return SessionData(key_id=data["k"], nonce=str(data.get("n", "")))

    @staticmethod
    def new_csrf_nonce() -> str:
        return secrets.token_urlsafe(16)

    def csrf_token(self, nonce: str) -> str:
        return self._csrf.get_signature(nonce).decode("ascii")

    def csrf_valid(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.csrf_token(nonce), token)
