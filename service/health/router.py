from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from service import __version__
from service.container import Container

router = APIRouter(tags=["health"])


def get_container(request: Request) -> Container:
    return request.app.state.container


ContainerDep = Annotated[Container, Depends(get_container)]


class ComponentState(BaseModel):
    status: str = Field(description="ok | degraded | unavailable | not_loaded")
    detail: dict = Field(default_factory=dict)


class HealthWarning(BaseModel):
    code: str = Field(description="outbound_webhooks_unsigned | chatwoot_webhooks_unverified")
    message: str = Field(description="What is unsafe and which setting fixes it.")


class HealthRead(BaseModel):
    status: str = Field(description="ok when every component is ok, else degraded (warnings do not count)")
    version: str
    components: dict[str, ComponentState] = Field(
        description="model, index, database, llm, tone, and workers: ok while some process running the "
        "background loops (`replydesk worker`, or `replydesk serve` with REPLYDESK_WORKERS_ENABLED=true) "
        "has reported within REPLYDESK_WORKER_STALE_S, degraded (its detail says what to start) otherwise."
    )
    warnings: list[HealthWarning] = Field(
        default_factory=list,
        description="Unsafe settings that still work (unsigned or unverified webhooks); logged at start too.",
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "status": "ok",
                    "version": "0.1.0",
                    "components": {
                        "model": {
                            "status": "ok",
                            "detail": {
                                "embedding_model": "bundled:all-MiniLM-L6-v2+bundled:use-multilingual-v3"
                            },
                        },
                        "index": {"status": "ok", "detail": {"chunks": 212}},
                        "database": {"status": "ok", "detail": {"url": "sqlite:///data/replydesk.db"}},
                        "workers": {
                            "status": "ok",
                            "detail": {
                                "alive": 2,
                                "by_kind": {"worker": 2},
                                "stale_after_s": 30.0,
                                "last_seen_at": "2026-01-05T09:00:01+00:00",
                            },
                        },
                    },
                    "warnings": [
                        {
                            "code": "outbound_webhooks_unsigned",
                            "message": "REPLYDESK_WEBHOOK_URL is set but REPLYDESK_WEBHOOK_SECRET is not: …",
                        }
                    ],
                }
            ]
        }
    }


@router.get("/health", response_model=HealthRead, summary="Liveness and component state (no auth)")
def health(container: ContainerDep) -> HealthRead:
    components = {name: ComponentState(**state) for name, state in container.health().items()}
    # `not_loaded` is a lazy component nobody has needed yet, not a fault.
    overall = "ok" if all(c.status in {"ok", "not_loaded"} for c in components.values()) else "degraded"
    # Warnings are about configuration, not a failing component: they leave `status` alone (an orchestrator
    # would otherwise restart a service that a restart cannot fix).
    warnings = [HealthWarning(**w) for w in container.warnings()]
    return HealthRead(status=overall, version=__version__, components=components, warnings=warnings)
