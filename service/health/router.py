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


class HealthRead(BaseModel):
    status: str = Field(description="ok when every component is ok, else degraded")
    version: str
    components: dict[str, ComponentState]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "status": "ok",
                    "version": "0.1.0",
                    "components": {
                        "model": {"status": "ok", "detail": {"embedding_model": "bundled:all-MiniLM-L6-v2"}},
                        "index": {"status": "ok", "detail": {"chunks": 212}},
                        "database": {"status": "ok", "detail": {"url": "sqlite:///data/replydesk.db"}},
                    },
                }
            ]
        }
    }


@router.get("/health", response_model=HealthRead, summary="Liveness and component state (no auth)")
def health(container: ContainerDep) -> HealthRead:
    components = {name: ComponentState(**state) for name, state in container.health().items()}
    # `not_loaded` is a lazy component nobody has needed yet, not a fault.
    overall = "ok" if all(c.status in {"ok", "not_loaded"} for c in components.values()) else "degraded"
    return HealthRead(status=overall, version=__version__, components=components)
