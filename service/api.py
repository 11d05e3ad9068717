"""App factory: builds the FastAPI app and gathers every capability's router."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import Depends, FastAPI

from service import __version__
from service.body_limit import BodyLimitMiddleware
from service.container import Container
from service.errors import install_error_handlers
from service.logging import configure_logging
from service.settings import Settings, get_settings

log = logging.getLogger("replydesk.api")

DESCRIPTION = """ReplyDesk sits between messaging channels and human agents: it triages every incoming
message, retrieves help articles, drafts replies in the customer's language, checks their tone, and keeps the
agent's decision on each suggestion."""

# Relative: the schema is served by the instance it describes, so `/` is that instance's own base URL
# (and generated clients take the real host as their base URL).
SERVERS = [{"url": "/", "description": "This ReplyDesk instance (the host serving this schema)."}]
LICENSE = {"name": "Apache-2.0", "identifier": "Apache-2.0"}


def create_app(
    settings: Settings | None = None, *, container: Container | None = None, warm: bool = True
) -> FastAPI:
    settings = settings or get_settings()
    container = container or Container(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container.start(warm=warm)
        yield
        await to_thread.run_sync(container.close)

    from service.auth.deps import authenticate, require_roles
    from service.auth.models import Role

    # Every route needs an API key (except /health); routers may narrow the roles further.
    app = FastAPI(
        title="ReplyDesk",
        version=__version__,
        description=DESCRIPTION,
        servers=SERVERS,
        license_info=LICENSE,
        lifespan=lifespan,
        dependencies=[Depends(authenticate)],
    )
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.state.container = container
    from service.console.app import install_console, render_error

    install_error_handlers(app, html=render_error)
    from service.db.errors import install_db_error_handlers

    install_db_error_handlers(app)

    from service.drafting.router import router as drafting_router
    from service.health.router import router as health_router
    from service.pipeline.router import router as triage_router
    from service.tone.router import router as tone_router

    # Analysis routers are written without auth; their roles are set here. Integration keys (they sit in
    # channel callback URLs) are not analysis keys: they ingest and report receipts only.
    analysis = [Depends(require_roles(Role.agent, Role.evaluator, Role.auditor))]
    app.include_router(health_router)
    app.include_router(triage_router, prefix="/v1", dependencies=analysis)
    app.include_router(drafting_router, prefix="/v1", dependencies=analysis)
    app.include_router(tone_router, prefix="/v1", dependencies=analysis)

    from service.kb.router import router as kb_router

    app.include_router(kb_router, prefix="/v1")  # its routes set their own roles (readers, editors)

    from service.auth.router import router as keys_router
    from service.integrations.adapters.router import router as channels_router
    from service.workflow.router import metrics_router
    from service.workflow.router import router as workflow_router

    app.include_router(workflow_router, prefix="/v1")
    app.include_router(channels_router, prefix="/v1")
    app.include_router(keys_router, prefix="/v1")
    app.include_router(metrics_router)
    install_console(app, settings)  # the agent console's pages (not in the OpenAPI schema)
    from service.auth.deps import PUBLIC_PATHS, QUERY_KEY_PREFIXES
    from service.openapi import install_openapi

    install_openapi(app, PUBLIC_PATHS, QUERY_KEY_PREFIXES)
    return app


def app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory service.api:app_from_env`."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
