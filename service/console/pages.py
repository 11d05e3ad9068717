"""What every console route shares: the router, rendering a page (user, CSRF token and cookie, clock),
cookies, redirects back after a form, and path ids."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.console.deps import (
    CodecDep,
    ConsoleUser,
    TemplatesDep,
)
from service.console.session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SessionCodec,
)
from service.workflow.models import (
    MAX_ROW_ID,
)

router = APIRouter(include_in_schema=False)

PathId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A row id (1 … 2^63 - 1).")]


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _secure(request: Request) -> bool:
    mode = request.app.state.container.settings.console_secure_cookies
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def _csrf_nonce(request: Request) -> tuple[str, bool]:
    """The browser's CSRF nonce, and whether it is new (then the response must set its cookie)."""
    nonce = request.cookies.get(CSRF_COOKIE)
    if nonce and 8 <= len(nonce) <= 64:
        return nonce, False
    return SessionCodec.new_csrf_nonce(), True


def set_cookie(
    response: Response, request: Request, name: str, value: str, *, embed: bool, max_age: int | None = None
) -> None:
    """HttpOnly cookies. The embedded panel lives in a third-party iframe (Chatwoot's origin): its cookies
    must be SameSite=None and Secure, and Partitioned (CHIPS) so that browsers blocking third-party cookies
    still keep them, per embedding site."""
    if not embed:
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, samesite="lax", secure=_secure(request), path="/"
        )
        return
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="none", secure=True, path="/")
    # Starlette writes `Partitioned` only on Python 3.14+: add the attribute to the header it just wrote.
    for i in range(len(response.raw_headers) - 1, -1, -1):
        key, raw = response.raw_headers[i]
        if key == b"set-cookie" and raw.startswith(name.encode() + b"="):
            response.raw_headers[i] = (key, raw + b"; Partitioned")
            break


class Page:
    """Renders console templates with what every page needs: the user, a CSRF token (setting its cookie the
    first time), the server's clock for the countdowns, and whether it is the embedded panel."""

    def __init__(self, request: Request, templates: TemplatesDep, codec: CodecDep) -> None:
        self.request = request
        self.templates = templates
        self.codec = codec

    def render(
        self,
        name: str,
        context: dict[str, Any],
        *,
        user: ConsoleUser | None = None,
        status_code: int = 200,
        embed: bool | None = None,
    ) -> HTMLResponse:
        request = self.request
        embed = (user.embed if user else False) if embed is None else embed
        nonce, new = _csrf_nonce(request)
        settings = request.app.state.container.settings
        base = {
            "request": request,
            "user": user,
            "csrf_field": CSRF_FIELD,
            "csrf_token": self.codec.csrf_token(nonce),
            "embed": embed,
            "now": request.app.state.container.clock.now(),
            "events_poll_s": settings.events_poll_s,
            "allowed_origins": request.app.state.console_frame_ancestors,
        }
        response = self.templates.TemplateResponse(
            request, name, {**base, **context}, status_code=status_code
        )
        if new:
            set_cookie(response, request, CSRF_COOKIE, nonce, embed=embed)
        return response


PageDep = Annotated[Page, Depends(Page)]


def back(url: str, request: Request) -> Response:
    """After a form post: back to the page (303), or for htmx a client-side redirect to it."""
    if is_htmx(request):
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def safe_next(value: str | None) -> str:
    # Only our own pages: an absolute or scheme-relative `next` would be an open redirect.
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/queue"


def page_url(conversation_id: int, user: ConsoleUser, *, done: str | None = None) -> str:
    base = "/console/embed/chatwoot/conversations" if user.embed else "/console/conversations"
    return f"{base}/{conversation_id}" + (f"?done={done}" if done else "")
