"""Who is using the console, and what they may do there.

A page accepts the session cookie set by the sign-in form or, for tests and automation, `Authorization: Bearer
<key>`. Roles are the API's (README § Security › Roles; the console's own table is `CONSOLE_MATRIX` in
tests/test_security_roles.py): agents and admins work conversations; auditors read them; evaluators see the
KPI page only. Every form posted with the cookie must carry the CSRF token; Bearer requests carry no ambient
credential, so they need none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.templating import Jinja2Templates

from service.auth.models import Principal, Role
from service.console.session import (
    CSRF_COOKIE,
    EMBED_SESSION_COOKIE,
    SESSION_COOKIE,
    SessionCodec,
)
from service.errors import Forbidden, Unauthorized

DECIDE = frozenset({Role.agent, Role.admin})  # approve, edit, reject, reply, claim, resolve
READ = DECIDE | {Role.auditor}  # queue and conversations
KPIS = READ | {Role.evaluator}  # the KPI page: aggregates only
SIGN_IN = KPIS

_bearer = HTTPBearer(auto_error=False, description="An API key (pages also accept the console cookie).")


class SignInRequired(Unauthorized):
    """No valid console session or key: pages answer with the sign-in form."""

    code = "sign_in_required"


class CsrfFailed(Forbidden):
    code = "csrf_failed"


@dataclass(frozen=True)
class ConsoleUser:
    principal: Principal
    via_cookie: bool
    embed: bool = False

    @property
    def can_decide(self) -> bool:
        return self.principal.role in DECIDE

    @property
    def can_read(self) -> bool:
        return self.principal.role in READ


def get_codec(request: Request) -> SessionCodec:
    return request.app.state.console_codec


def get_templates(request: Request) -> Jinja2Templates:
    return request.app.state.console_templates


CodecDep = Annotated[SessionCodec, Depends(get_codec)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]


def console_user(
    request: Request,
    codec: CodecDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ConsoleUser:
    container = request.app.state.container
    principal: Principal | None = None
    via_cookie = embed = False
    if credentials is not None:
        principal = container.keys.authenticate(credentials.credentials)
        if principal is None:
            raise SignInRequired("invalid or revoked API key")
    else:
        # The first-party cookie first; inside Chatwoot's iframe only the embed cookie (SameSite=None) comes.
        embed = request.url.path.startswith("/console/embed/")
        session = codec.read(request.cookies.get(SESSION_COOKIE))
        if session is None:
            session = codec.read(request.cookies.get(EMBED_SESSION_COOKIE))
            embed = embed or session is not None
        if session is not None:
            principal = container.keys.principal_by_id(session.key_id)
            via_cookie = True
        if principal is None:
            raise SignInRequired("sign in with your agent key")
    container.rate_limiter.hit(principal.key_id, principal.rate_limit)
    request.state.principal = principal
    return ConsoleUser(principal=principal, via_cookie=via_cookie, embed=embed)


def _require(user: ConsoleUser, allowed: frozenset[Role], what: str) -> ConsoleUser:
    if user.principal.role not in allowed:
        raise Forbidden(
            f"role {user.principal.role.value!r} may not {what}",
            details={"role": user.principal.role.value, "allowed": sorted(r.value for r in allowed)},
        )
    return user


def csrf_checked(
    request: Request,
    codec: CodecDep,
    user: Annotated[ConsoleUser, Depends(console_user)],
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
    x_csrf_token: Annotated[str | None, Header(max_length=200)] = None,
) -> ConsoleUser:
    """The user of a state-changing request: with the cookie, only when the CSRF token matches."""
    if user.via_cookie and not codec.csrf_valid(request.cookies.get(CSRF_COOKIE), csrf_token or x_csrf_token):
        raise CsrfFailed("the form's security token is missing or stale; reload the page and try again")
    return user


def _reader(user: Annotated[ConsoleUser, Depends(console_user)]) -> ConsoleUser:
    return _require(user, READ, "read conversations")


def _kpi_reader(user: Annotated[ConsoleUser, Depends(console_user)]) -> ConsoleUser:
    return _require(user, KPIS, "see the KPI page")


def _any_user(user: Annotated[ConsoleUser, Depends(console_user)]) -> ConsoleUser:
    return _require(user, SIGN_IN, "use the console")


def _decider(user: Annotated[ConsoleUser, Depends(csrf_checked)]) -> ConsoleUser:
    return _require(user, DECIDE, "decide on conversations")


def _csrf_user(user: Annotated[ConsoleUser, Depends(csrf_checked)]) -> ConsoleUser:
    return _require(user, SIGN_IN, "use the console")


ReaderDep = Annotated[ConsoleUser, Depends(_reader)]
KpiReaderDep = Annotated[ConsoleUser, Depends(_kpi_reader)]
DeciderDep = Annotated[ConsoleUser, Depends(_decider)]
AnyUserDep = Annotated[ConsoleUser, Depends(_any_user)]
CsrfUserDep = Annotated[ConsoleUser, Depends(_csrf_user)]
