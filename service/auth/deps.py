"""Authentication (every route but /health) and role checks.

`authenticate` is an app-wide dependency (set in `create_app`), so a router included without any auth still
needs a valid key; `require_roles(...)` narrows a router or route to some roles (admin always passes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth.keys import KeyStore
from service.auth.models import Principal, Role
from service.errors import Forbidden, Unauthorized

PUBLIC_PATHS = frozenset({"/health"})
# Platforms that cannot send an Authorization header (Meta, Chatwoot webhooks) put the key in `?api_key=`.
QUERY_KEY_PREFIXES = ("/v1/channels/",)

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rdk_...`")


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    path = request.url.path
    if path in PUBLIC_PATHS or path == "/" or path == "/console" or path.startswith("/console/"):
        return None  # the console authenticates its pages itself (cookie or Bearer: service/console/deps.py)
    raw = credentials.credentials if credentials is not None else None
    if raw is None and request.url.path.startswith(QUERY_KEY_PREFIXES):
        raw = request.query_params.get("api_key")
    if not raw:
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    container = request.app.state.container
    principal = container.keys.authenticate(raw)
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    container.rate_limiter.hit(principal.key_id, principal.rate_limit)
    request.state.principal = principal
    return principal


def require_roles(*roles: Role | str) -> Callable[..., Principal]:
    """Dependency allowing the given roles (and admin)."""
    allowed = frozenset(Role(r) for r in roles) | {Role.admin}

    def _check(principal: Annotated[Principal | None, Depends(authenticate)]) -> Principal:
        if principal is None:
            raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
        if principal.role not in allowed:
            raise Forbidden(
                f"role {principal.role.value!r} may not use this endpoint",
                details={"role": principal.role.value, "allowed": sorted(r.value for r in allowed)},
            )
        return principal

    _check.__name__ = "require_" + "_".join(sorted(r.value for r in allowed))
    return _check


def current_principal(principal: Annotated[Principal | None, Depends(authenticate)]) -> Principal:
    if principal is None:
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def get_key_store(request: Request) -> KeyStore:
    return request.app.state.container.keys


KeyStoreDep = Annotated[KeyStore, Depends(get_key_store)]
