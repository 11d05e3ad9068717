"""Admin endpoints for API keys (the CLI `replydesk keys` does the same)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from service.auth.deps import KeyStoreDep, require_roles
from service.auth.models import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, Role

router = APIRouter(prefix="/keys", tags=["keys"], dependencies=[Depends(require_roles(Role.admin))])


@router.post(
    "",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (the secret is returned once)",
)
def create_key(body: ApiKeyCreate, keys: KeyStoreDep) -> ApiKeyCreated:
    return keys.create(body)


@router.get("", response_model=list[ApiKeyRead], summary="List API keys (never their secrets)")
def list_keys(keys: KeyStoreDep, include_revoked: bool = True) -> list[ApiKeyRead]:
    return keys.list(include_revoked=include_revoked)


@router.delete("/{key_id}", response_model=ApiKeyRead, summary="Revoke an API key")
def revoke_key(key_id: str, keys: KeyStoreDep) -> ApiKeyRead:
    return keys.revoke(key_id)
