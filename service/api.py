"""App factory: builds the FastAPI app and gathers every capability's router."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__
from service.container import Container
from service.errors import install_error_handlers
from service.logging import configure_logging
from service.settings import Settings, get_settings

log = logging.getLogger("replydesk.api")

DESCRIPTION = """ReplyDesk sits between messaging channels and human agents: it triages every incoming message,
retrieves help articles, drafts replies in the customer's language, checks their tone, and keeps the agent's
decision on each suggestion."""


def create_app(settings: Settings | None = None, *, container: Container | None = None, warm: bool = True) -> FastAPI:
    settings = settings or get_settings()
    container = container or Container(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm:
            container.warm_up()
        yield
        container.close()

    app = FastAPI(title="ReplyDesk", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.container = container
    install_error_handlers(app)

    from service.health.router import router as health_router
    from service.triage.router import router as triage_router

    app.include_router(health_router)
    app.include_router(triage_router, prefix="/v1")
    return app


def app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory service.api:app_from_env`."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
