"""Domain errors and the one place that maps them to HTTP responses."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.redaction import redact, redact_values

log = logging.getLogger("replydesk.errors")


class ReplyDeskError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(ReplyDeskError):
    status_code = 422
    code = "invalid_input"


class NotFound(ReplyDeskError):
    status_code = 404
    code = "not_found"


class Conflict(ReplyDeskError):
    status_code = 409
    code = "conflict"


class Unauthorized(ReplyDeskError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ReplyDeskError):
    status_code = 403
    code = "forbidden"


class RateLimited(ReplyDeskError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(ReplyDeskError):
    status_code = 503
    code = "unavailable"


class IndexUnavailable(ServiceUnavailable):
    code = "index_unavailable"


class Overloaded(ServiceUnavailable):
    """More LLM-bound requests are running and waiting than the pipeline pool admits; retry later."""

    code = "overloaded"


class LLMError(ReplyDeskError):
    """The LLM failed (timeout, transport error, unusable output). Callers fall back; never surfaces as
    500."""

    status_code = 502
    code = "llm_error"


_HTTP_ERRORS = {
    404: ("not_found", "not found"),
    405: ("method_not_allowed", "method not allowed on this route"),
}


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    """The project's error envelope: `{"error": {"code", "message", "details"}}`, credentials redacted."""
    return {"error": {"code": code, "message": redact(message), "details": redact_values(details or {})}}


# A page renderer for requests that are not API calls (the agent console): given the request and the mapped
# status, code, message and details, a Response, or None to answer with the JSON envelope.
HtmlErrors = Callable[[Request, int, str, str, dict], Response | None]


def install_error_handlers(app: FastAPI, html: HtmlErrors | None = None) -> None:
    """Domain errors → HTTP status, in one place; `html` may show them as pages for the console."""

    @app.exception_handler(ReplyDeskError)
    async def _domain(request: Request, exc: ReplyDeskError) -> Response:
        if html is not None and (page := html(request, exc.status_code, exc.code, exc.message, exc.details)):
            return page
        headers = None
        if isinstance(exc, Unauthorized):
            headers = {"WWW-Authenticate": "Bearer"}
        elif isinstance(exc, RateLimited | Overloaded) and "retry_after_s" in exc.details:
            headers = {"Retry-After": str(exc.details["retry_after_s"])}
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        """Errors the framework raises itself (unknown route, wrong method) in the same envelope as ours."""
        code, message = _HTTP_ERRORS.get(exc.status_code, ("http_error", str(exc.detail)))
        details: dict = {}
        if exc.status_code == 404 and exc.detail == "Not Found":  # the router's own: no such route
            message = f"no route {request.url.path!r}; see /docs for the API"
        elif exc.status_code == 405:
            details = {"method": request.method}
        if html is not None and (page := html(request, exc.status_code, code, message, details)):
            return page
        return JSONResponse(
            error_body(code, message, details),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "json_invalid":
                loc, msg = (
                    "body",
                    f"request body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})",
                )
            problems.append({"field": loc or "body", "message": msg})
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "invalid request"
        details = {"problems": problems}
        if html is not None and (page := html(request, 422, "invalid_input", message, details)):
            return page
        return JSONResponse(error_body("invalid_input", message, details), status_code=422)
