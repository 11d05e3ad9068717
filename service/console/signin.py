"""Signing in and out of the console: the key form, the session cookie, CSRF on the form itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.auth.deps import KeyStoreDep
from service.console.deps import (
    SIGN_IN,
    CsrfUserDep,
)
from service.console.pages import PageDep, router, safe_next, set_cookie
from service.console.session import (
    CSRF_COOKIE,
    EMBED_SESSION_COOKIE,
    SESSION_COOKIE,
)

# -- sign-in ------------------------------------------------------------------------------------------------


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/console/queue", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/console")
def console_root() -> RedirectResponse:
    return RedirectResponse("/console/queue", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/console/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    page: PageDep,
    next: Annotated[str | None, Query(max_length=500)] = None,
    embed: bool = False,
) -> HTMLResponse:
    return page.render(
        "login.html",
        {"next": safe_next(next), "error": None},
        embed=embed,
    )


@router.post("/console/login", response_class=HTMLResponse)
def login(
    request: Request,
    page: PageDep,
    keys: KeyStoreDep,
    api_key: Annotated[str, Form(min_length=1, max_length=200)],
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
    next: Annotated[str | None, Form(max_length=500)] = None,
    embed: Annotated[bool, Form()] = False,
) -> Response:
    target = safe_next(next)
    error = None
    codec = page.codec
    if not codec.csrf_valid(request.cookies.get(CSRF_COOKIE), csrf_token):
        error = "The sign-in form expired. Please try again."
    else:
        principal = keys.authenticate(api_key.strip())
        if principal is None:
            error = "That key is not valid or has been revoked."
        elif principal.role not in SIGN_IN:
            error = f"A {principal.role.value} key cannot use the console."
        else:
            response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
            set_cookie(
                response,
                request,
                EMBED_SESSION_COOKIE if embed else SESSION_COOKIE,
                codec.issue(principal.key_id),
                embed=embed,
                max_age=codec.max_age_s,
            )
            return response
    return page.render(
        "login.html",
        {"next": target, "error": error},
        status_code=status.HTTP_401_UNAUTHORIZED,
        embed=embed,
    )


@router.post("/console/logout")
def logout(request: Request, user: CsrfUserDep) -> Response:
    response = RedirectResponse("/console/login", status_code=status.HTTP_303_SEE_OTHER)
    for name in (SESSION_COOKIE, EMBED_SESSION_COOKIE):
        response.delete_cookie(name, path="/")
    return response
