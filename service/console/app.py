"""Wires the console into the app: templates and their filters, the session codec, the vendored static files,
security headers (a strict Content-Security-Policy) and errors shown as pages."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.console.session import SessionCodec, load_or_create_secret
from service.settings import Settings

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    409: "Not done",
    413: "Too large",
    422: "Check the form",
    429: "Slow down",
    503: "Busy",
}


def is_console_path(path: str) -> bool:
    return path == "/" or path == "/console" or path.startswith("/console/")


def frame_ancestors(settings: Settings) -> str:
    """Who may put the Chatwoot panel in an iframe: the configured origins, else Chatwoot's origin."""
    if settings.console_frame_ancestors.strip():
        return settings.console_frame_ancestors.strip()
    if settings.chatwoot_base_url:
        parts = urlsplit(settings.chatwoot_base_url)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return "'none'"


def content_security_policy(ancestors: str) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "font-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-ancestors {ancestors}",
        ]
    )


class ConsoleSecurityHeaders:
    """Headers for every console response: CSP (no inline script or style, no third-party anything), no
    framing except the Chatwoot panel by the allowed origins, no sniffing, no caching of pages."""

    def __init__(self, app: ASGIApp, *, embed_ancestors: str) -> None:
        self.app = app
        self.page_headers = self._encode(content_security_policy("'none'"), "DENY")
        self.embed_headers = self._encode(content_security_policy(embed_ancestors), None)

    @staticmethod
    def _encode(csp: str, frame_options: str | None) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if frame_options:
            headers.append((b"x-frame-options", frame_options.encode()))
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not is_console_path(path):
            await self.app(scope, receive, send)
            return
        embed = path.startswith("/console/embed/") or path == "/console/login"
        extra = self.embed_headers if embed else self.page_headers
        static = path.startswith("/console/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers.extend(h for h in extra if h[0] not in names)
                if not static and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def _pct100(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} %"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _clock(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _safe_url(value: Any) -> bool:
    """Only http(s) links become clickable (a channel could send `javascript:` as an attachment URL)."""
    return isinstance(value, str) and value.lower().startswith(("https://", "http://"))


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.filters.update(pct=_pct, pct100=_pct100, duration=_duration, clock=_clock)
    env.tests["safe_url"] = _safe_url
    return templates


def render_error(
    request: Request, status_code: int, code: str, message: str, details: dict[str, Any]
) -> Response | None:
    """Console requests get pages, not JSON: sign-in for 401, an error page otherwise."""
    if not is_console_path(request.url.path):
        return None
    if status_code == 401:
        embed = request.url.path.startswith("/console/embed/")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/console/embed/chatwoot" if embed else "/console/queue"
        login = f"/console/login?next={quote(target, safe='')}" + ("&embed=true" if embed else "")
        if request.headers.get("HX-Request") == "true":
            return Response(status_code=401, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)
    templates: Jinja2Templates = request.app.state.console_templates
    codec: SessionCodec = request.app.state.console_codec
    nonce = request.cookies.get("rd_csrf") or ""
    context = {
        "request": request,
        "user": None,
        "csrf_field": "csrf_token",
        "csrf_token": codec.csrf_token(nonce) if nonce else "",
        "embed": request.url.path.startswith("/console/embed/"),
        "now": request.app.state.container.clock.now(),
        "status_code": status_code,
        "title": _TITLES.get(status_code, "Something went wrong"),
        "message": message,
        "code": code,
        "back": request.headers.get("referer") if _same_origin(request) else None,
    }
    response: HTMLResponse = templates.TemplateResponse(
        request, "error.html", context, status_code=status_code
    )
    return response


def _same_origin(request: Request) -> bool:
    referer = request.headers.get("referer")
    if not referer:
        return False
    parts = urlsplit(referer)
    return parts.netloc == request.url.netloc and parts.path.startswith("/console/")


def install_console(app: FastAPI, settings: Settings) -> None:
    from service.console.router import router

    secret = load_or_create_secret(settings.console_session_secret, settings.data_dir)
    app.state.console_codec = SessionCodec(secret, int(settings.console_session_hours * 3600))
    app.state.console_templates = make_templates()
    app.state.console_frame_ancestors = frame_ancestors(settings)
    app.mount("/console/static", StaticFiles(directory=str(STATIC_DIR)), name="console-static")
    app.include_router(router)
    app.add_middleware(ConsoleSecurityHeaders, embed_ancestors=frame_ancestors(settings))
