"""Database outages (locked, gone, unreachable) answer 503 with the usual JSON error body, never a 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DisconnectionError, OperationalError, TimeoutError

from service.errors import ServiceUnavailable

log = logging.getLogger("replydesk.db")


def install_db_error_handlers(app: FastAPI) -> None:
    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
        log.warning("database unavailable", extra={"error": detail})
        return JSONResponse(
            {
                "error": {
                    "code": ServiceUnavailable.code,
                    "message": f"the database is unavailable, retry shortly: {detail}",
                    "details": {},
                }
            },
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for exc_type in (OperationalError, DisconnectionError, TimeoutError):
        app.add_exception_handler(exc_type, _unavailable)
