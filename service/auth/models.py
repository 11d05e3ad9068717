"""API key schemas and the authenticated principal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Role(StrEnum):
    """What a key may do. `admin` may do everything."""

    # The full route x role table is README § Security › Roles, checked by tests/test_security_roles.py.
    integration = "integration"  # a helpdesk or channel: ingest, receipts, outbound delivery, resolve
    agent = "agent"  # a person working the queue: approve, edit, reject, reply, resolve; analysis
    editor = "editor"  # maintains the help articles: KB reads and writes, reindex
    evaluator = "evaluator"  # analysis endpoints and metrics, no customer data
    auditor = "auditor"  # an evaluator granted read-only access to customer data (messages, threads)
    admin = "admin"  # keys and everything else


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: Role
    rate_limit: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.key_id})"


class ApiKeyBase(BaseModel):
    name: str = Field(
        min_length=1, max_length=100, description="Who or what uses the key, e.g. `zendesk-prod`."
    )
    role: Role
    rate_limit: str | None = Field(
        None, max_length=40, description="Own limit, e.g. `120/minute`; default: the service-wide limit."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("name is empty")
        return v


class ApiKeyCreate(ApiKeyBase):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "helpdesk-prod", "role": "integration"},
                {"name": "maria", "role": "agent", "rate_limit": "120/minute"},
            ]
        }
    )


KEY_EXAMPLE: dict[str, Any] = {
    "id": "key_3f9a1c2b7d",
    "name": "helpdesk-prod",
    "role": "integration",
    "rate_limit": None,
    "prefix": "rdk_Q2xhc3Np",
    "created_at": "2026-01-05T09:00:00Z",
    "revoked_at": None,
    "last_used_at": "2026-01-05T09:12:00Z",
}


class ApiKeyRead(ApiKeyBase):
    id: str = Field(description="Public id, used to revoke the key.")
    prefix: str = Field(description="First characters of the key, to recognise it.")
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    model_config = ConfigDict(json_schema_extra={"examples": [KEY_EXAMPLE]})


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret key. Shown once; only its hash is stored.")
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**KEY_EXAMPLE, "last_used_at": None, "key": "rdk_Q2xhc3NpYzpleGFtcGxlLWtleS1zaG93bi1vbmNl"}
            ]
        }
    )
