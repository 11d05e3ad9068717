"""The console's pages and forms. Thin: each route reads or decides through the same `Workflow` as the API
(so edit distance, who and when are kept the same way) and renders a template.

Every page works as plain HTML (forms post and redirect back); htmx swaps fragments where it is loaded: the
queue rows and the thread on server-sent events, tone findings while the agent types, presence every few
seconds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from service.auth.deps import KeyStoreDep
from service.console import views
from service.console.deps import (
    SIGN_IN,
    CodecDep,
    ConsoleUser,
    CsrfUserDep,
    DeciderDep,
    KpiReaderDep,
    ReaderDep,
    TemplatesDep,
)
from service.console.session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    EMBED_SESSION_COOKIE,
    SESSION_COOKIE,
    SessionCodec,
)
from service.errors import InvalidInput, NotFound
from service.triage.models import Channel, UrgencyLevel
from service.workflow.deps import WorkflowDep
from service.workflow.events import follow
from service.workflow.kpis import compute_kpis
from service.workflow.models import (
    MAX_ROW_ID,
    ApproveRequest,
    AssignUpdate,
    QueueFilter,
    RejectRequest,
    ReplyRequest,
    ResolveRequest,
)
from service.workflow.service import ToneBlocked, Workflow

router = APIRouter(include_in_schema=False)

PathId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A row id (1 … 2^63 - 1).")]
# Events that change what the queue shows, and those that change an open conversation's page.
QUEUE_EVENTS = frozenset(
    {
        "message.received",
        "suggestions.created",
        "suggestion.approved",
        "suggestion.edited",
        "suggestion.rejected",
        "message.outbound",
        "conversation.resolved",
        "conversation.assigned",
        "sla.at_risk",
        "sla.breached",
    }
)


def _is_htmx(request: Request) -> bool:
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


def _back(url: str, request: Request) -> Response:
    """After a form post: back to the page (303), or for htmx a client-side redirect to it."""
    if _is_htmx(request):
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def _safe_next(value: str | None) -> str:
    # Only our own pages: an absolute or scheme-relative `next` would be an open redirect.
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/queue"


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
        {"next": _safe_next(next), "error": None},
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
    target = _safe_next(next)
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


# -- the queue ----------------------------------------------------------------------------------------------


def _queue_filter(
    user: ConsoleUser,
    channel: str | None,
    urgency: str | None,
    intent: str | None,
    language: str | None,
    assigned: str | None,
) -> tuple[QueueFilter, dict[str, str]]:
    chosen = {
        k: v
        for k, v in {
            "channel": channel,
            "urgency": urgency,
            "intent": intent,
            "language": language,
            "assigned": assigned,
        }.items()
        if v
    }
    try:
        level = UrgencyLevel(urgency) if urgency else None
    except ValueError as exc:
        raise InvalidInput(f"urgency {urgency!r} is not one of {[u.value for u in UrgencyLevel]}") from exc
    filters = QueueFilter(
        channel=channel or None,
        urgency=level,
        intent=intent or None,
        language=language or None,
        assigned_key_id=user.principal.key_id if assigned == "mine" else None,
        unassigned=assigned == "unassigned",
    )
    return filters, chosen


QueryText = Annotated[str | None, Query(max_length=64)]
AssignedQuery = Annotated[Literal["", "mine", "unassigned"] | None, Query()]


@router.get("/console/queue", response_class=HTMLResponse)
def queue_page(
    request: Request,
    user: ReaderDep,
    workflow: WorkflowDep,
    page: PageDep,
    channel: QueryText = None,
    urgency: QueryText = None,
    intent: QueryText = None,
    language: QueryText = None,
    assigned: AssignedQuery = None,
    fragment: Literal["rows"] | None = None,
) -> HTMLResponse:
    filters, chosen = _queue_filter(user, channel, urgency, intent, language, assigned)
    data = workflow.queue(limit=workflow.settings.console_queue_limit, filters=filters)
    context = {
        "queue": data,
        "chosen": chosen,
        "query": urlencode(chosen),
        "facets": workflow.queue_facets(),
        "channels": [c.value for c in Channel],
        "urgencies": [u.value for u in UrgencyLevel],
        "labels": views.SLA_LABELS,
        "remaining": views.remaining_text,
    }
    name = "_queue_rows.html" if fragment == "rows" else "queue.html"
    return page.render(name, context, user=user)


@router.get("/console/events")
async def console_events(
    request: Request,
    user: ReaderDep,
    workflow: WorkflowDep,
    conversation_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
) -> EventSourceResponse:
    """The event log as coarse signals for htmx: `queue` when the queue may have changed, `thread` and
    `presence` when the open conversation did. Same log and follower as GET /v1/events."""

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for batch in follow(
            workflow.events,
            start=None,
            types=None,
            poll_s=workflow.settings.events_poll_s,
            is_disconnected=request.is_disconnected,
        ):
            names: list[str] = []
            if any(ev.type in QUEUE_EVENTS for ev in batch):
                names.append("queue")
            mine = [ev for ev in batch if conversation_id and ev.conversation_id == conversation_id]
            if any(ev.type != "conversation.assigned" for ev in mine):
                names.append("thread")
            if any(ev.type == "conversation.assigned" for ev in mine):
                names.append("presence")
            for name in names:
                yield ServerSentEvent(data=json.dumps({"last": batch[-1].id}), event=name)

    return EventSourceResponse(stream(), ping=15)


# -- a conversation -----------------------------------------------------------------------------------------


def _conversation_context(
    workflow: Workflow, user: ConsoleUser, conversation_id: int, edit: int | None
) -> dict[str, Any]:
    detail = workflow.conversation(conversation_id)
    analysis = workflow.latest_analysis(conversation_id)
    queue_ids = [
        it.conversation_id for it in workflow.queue(limit=workflow.settings.console_queue_limit).items
    ]
    page = views.conversation_page(detail, analysis, queue_ids)
    editing = next((c for c in page.drafts if c.suggestion.id == edit), None)
    presence = workflow.presence(conversation_id)
    return {
        "page": page,
        "conv": detail,
        "analysis": analysis,
        "editing": editing,
        "presence": presence,
        "others": [v for v in presence.viewers if v.key_id != user.principal.key_id],
        "agents": workflow.assignable_agents() if user.can_decide else [],
        "tick": views.tick,
        "labels": views.SLA_LABELS,
        "remaining": views.remaining_text,
        "findings": views.finding_list,
    }


@router.get("/console/conversations/{conversation_id}", response_class=HTMLResponse)
def conversation_page(
    request: Request,
    conversation_id: PathId,
    user: ReaderDep,
    workflow: WorkflowDep,
    page: PageDep,
    edit: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    fragment: Literal["thread", "presence"] | None = None,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    opening = user.can_decide and fragment is None
    if opening:
        workflow.touch_presence(conversation_id, user.principal)
    context = _conversation_context(workflow, user, conversation_id, edit)
    context["done"] = done
    if opening:  # the agent has now seen the customer's messages (read receipts, unread counts)
        last = views.last_inbound(context["conv"])
        if last is not None and last.agent_read_at is None:
            workflow.mark_read(last.id, user.principal)
    name = {"thread": "_thread.html", "presence": "_presence.html"}.get(fragment or "", "conversation.html")
    return page.render(name, context, user=user, embed=user.embed)


@router.post("/console/conversations/{conversation_id}/presence", response_class=HTMLResponse)
def presence_beat(
    request: Request,
    conversation_id: PathId,
    user: DeciderDep,
    workflow: WorkflowDep,
    page: PageDep,
) -> HTMLResponse:
    presence = workflow.touch_presence(conversation_id, user.principal)
    context = {
        "presence": presence,
        "others": [v for v in presence.viewers if v.key_id != user.principal.key_id],
        "conv": workflow.conversation(conversation_id),
        "agents": workflow.assignable_agents(),
    }
    return page.render("_presence.html", context, user=user, embed=user.embed)


@router.post("/console/conversations/{conversation_id}/assign")
def assign(
    request: Request,
    conversation_id: PathId,
    user: DeciderDep,
    workflow: WorkflowDep,
    agent_key_id: Annotated[str, Form(max_length=32)] = "",
    claim: Annotated[bool, Form()] = False,
) -> Response:
    if claim:
        # Claiming only takes a conversation nobody has: two agents claiming at once, one wins (409 other).
        req = AssignUpdate(agent_key_id=user.principal.key_id, expected_key_id="")
    else:
        req = AssignUpdate(agent_key_id=agent_key_id or None)
    workflow.assign(conversation_id, req, user.principal)
    return _back(_page_url(conversation_id, user, done="assigned"), request)


def _page_url(conversation_id: int, user: ConsoleUser, *, done: str | None = None) -> str:
    base = "/console/embed/chatwoot/conversations" if user.embed else "/console/conversations"
    return f"{base}/{conversation_id}" + (f"?done={done}" if done else "")


@router.post("/console/conversations/{conversation_id}/tone", response_class=HTMLResponse)
def tone_preview(
    request: Request,
    conversation_id: PathId,
    user: DeciderDep,
    workflow: WorkflowDep,
    page: PageDep,
    text: Annotated[str, Form(max_length=8000)] = "",
) -> HTMLResponse:
    report = workflow.preview_tone(conversation_id, text)
    context = {"report": report, "findings": views.finding_list}
    return page.render("_tone.html", context, user=user, embed=user.embed)


def _decision_failed(
    page: Page,
    workflow: Workflow,
    user: ConsoleUser,
    conversation_id: int,
    error: str,
    text: str,
    suggestion_id: int | None,
    findings: list[dict[str, Any]],
) -> HTMLResponse:
    """The conversation again with the agent's text kept and the reason it was not sent."""
    context = _conversation_context(workflow, user, conversation_id, suggestion_id)
    context.update(
        {
            "error": error,
            "kept_text": text,
            "kept_suggestion": suggestion_id,
            "blocked": findings,
            "done": None,
        }
    )
    return page.render(
        "conversation.html",
        context,
        user=user,
        status_code=status.HTTP_409_CONFLICT,
        embed=user.embed,
    )


@router.post("/console/conversations/{conversation_id}/send", response_class=HTMLResponse)
def send(
    request: Request,
    conversation_id: PathId,
    user: DeciderDep,
    workflow: WorkflowDep,
    page: PageDep,
    text: Annotated[str, Form(max_length=8000)] = "",
    suggestion_id: Annotated[int | None, Form(ge=1, le=MAX_ROW_ID)] = None,
    override_reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """The composer: a picked draft (as is or edited) is approved; otherwise the text is the agent's own."""
    reason = override_reason.strip() or None
    text = text.replace("\r\n", "\n").strip()  # browsers submit textarea line breaks as CRLF
    try:
        if suggestion_id is not None:
            suggestion = workflow.get_suggestion(suggestion_id)
            if suggestion.conversation_id != conversation_id:
                raise NotFound(f"no suggestion {suggestion_id} in conversation {conversation_id}")
            edited = bool(text) and text != suggestion.draft_text
            workflow.approve(
                suggestion_id,
                ApproveRequest(text=text if edited else None, override_reason=reason),
                user.principal,
            )
            done = "edited" if edited else "approved"
        else:
            workflow.reply(conversation_id, ReplyRequest(text=text, override_reason=reason), user.principal)
            done = "replied"
    except ToneBlocked as exc:
        return _decision_failed(
            page,
            workflow,
            user,
            conversation_id,
            "A tone finding blocks this reply. Change the text, or give a reason to send it anyway.",
            text,
            suggestion_id,
            list(exc.details.get("findings", [])),
        )
    except ValueError as exc:  # pydantic's ValidationError: empty or over-long text, short reason
        return _decision_failed(
            page,
            workflow,
            user,
            conversation_id,
            _first_error(exc),
            text,
            suggestion_id,
            [],
        )
    return _back(_page_url(conversation_id, user, done=done), request)


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        return f"{field}: {str(first.get('msg', 'invalid')).removeprefix('Value error, ')}"
    return str(exc)


@router.post("/console/suggestions/{suggestion_id}/approve")
def approve(
    request: Request,
    suggestion_id: PathId,
    user: DeciderDep,
    workflow: WorkflowDep,
    page: PageDep,
    override_reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Use a draft as is."""
    suggestion = workflow.get_suggestion(suggestion_id)
    try:
        workflow.approve(
            suggestion_id, ApproveRequest(override_reason=override_reason.strip() or None), user.principal
        )
    except ToneBlocked as exc:
        return _decision_failed(
            page,
            workflow,
            user,
            suggestion.conversation_id,
            "A tone finding blocks this draft. Edit it, or give a reason to send it anyway.",
            suggestion.draft_text,
            suggestion_id,
            list(exc.details.get("findings", [])),
        )
    return _back(_page_url(suggestion.conversation_id, user, done="approved"), request)


@router.post("/console/suggestions/{suggestion_id}/reject")
def reject(
    request: Request,
    suggestion_id: PathId,
    user: DeciderDep,
    workflow: WorkflowDep,
    reason: Annotated[str, Form(min_length=1, max_length=500)],
) -> Response:
    suggestion = workflow.get_suggestion(suggestion_id)
    workflow.reject(suggestion_id, RejectRequest(reason=reason.strip() or reason), user.principal)
    return _back(_page_url(suggestion.conversation_id, user, done="rejected"), request)


@router.post("/console/conversations/{conversation_id}/resolve")
def resolve(
    request: Request,
    conversation_id: PathId,
    user: DeciderDep,
    workflow: WorkflowDep,
) -> Response:
    workflow.resolve(conversation_id, ResolveRequest(), user.principal)
    return _back(_page_url(conversation_id, user, done="resolved"), request)


# -- KPIs ---------------------------------------------------------------------------------------------------


@router.get("/console/kpis", response_class=HTMLResponse)
def kpi_page(
    request: Request,
    user: KpiReaderDep,
    workflow: WorkflowDep,
    page: PageDep,
    days: Annotated[int, Query(ge=1, le=90)] = 14,
) -> HTMLResponse:
    now = workflow.clock.now()
    start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    overall = compute_kpis(workflow.db, start, now, now)
    series = []
    day = start
    while day < now:
        end = min(day + timedelta(days=1), now)
        k = compute_kpis(workflow.db, day, end, now)
        series.append(
            {
                "day": day.date().isoformat(),
                "frt_p50_min": _minutes(k.overall.first_response.p50_s),
                "frt_p90_min": _minutes(k.overall.first_response.p90_s),
                "sla_met_pct": k.overall.sla_met_pct,
                "conversations": k.overall.conversations,
            }
        )
        day = end
    intents = [
        {
            "intent": name,
            "approved": g.suggestions.approved,
            "edited": g.suggestions.edited,
            "rejected": g.suggestions.rejected,
        }
        for name, g in overall.per_intent.items()
        if g.suggestions.decided
    ]
    context = {
        "kpis": overall,
        "series": series,
        "days": days,
        # json.dumps escapes nothing HTML-relevant: `</` must not end the <script type="application/json">.
        "series_json": json.dumps(series).replace("</", "<\\/"),
        "intents_json": json.dumps(intents).replace("</", "<\\/"),
    }
    return page.render("kpis.html", context, user=user)


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


# -- the Chatwoot Dashboard App ------------------------------------------------------------------------------


@router.get("/console/embed/chatwoot", response_class=HTMLResponse)
def chatwoot_app(
    request: Request,
    page: PageDep,
    keys: KeyStoreDep,
) -> HTMLResponse:
    """The Dashboard App's URL: waits for Chatwoot's `appContext` message, then opens the conversation's
    panel (sign-in first if this browser has no console session for the iframe)."""
    session = page.codec.read(request.cookies.get(EMBED_SESSION_COOKIE))
    signed_in = session is not None and keys.principal_by_id(session.key_id) is not None
    return page.render(
        "embed_chatwoot.html",
        {"signed_in": signed_in},
        embed=True,
    )


@router.get("/console/embed/chatwoot/open")
def chatwoot_open(
    request: Request,
    user: ReaderDep,
    workflow: WorkflowDep,
    page: PageDep,
    account_id: Annotated[int, Query(ge=1, le=MAX_ROW_ID)],
    conversation_id: Annotated[int, Query(ge=1, le=MAX_ROW_ID)],
) -> Response:
    """Chatwoot's ids → our conversation's panel."""
    ours = workflow.conversation_id_by_external(f"chatwoot:{account_id}:{conversation_id}")
    if ours is None:
        return page.render(
            "embed_chatwoot.html",
            {"signed_in": True, "missing": f"{account_id}/{conversation_id}"},
            user=user,
            embed=True,
            status_code=status.HTTP_404_NOT_FOUND,
        )
    return RedirectResponse(f"/console/embed/chatwoot/conversations/{ours}", status_code=303)


@router.get("/console/embed/chatwoot/conversations/{conversation_id}", response_class=HTMLResponse)
def chatwoot_panel(
    request: Request,
    conversation_id: PathId,
    user: ReaderDep,
    workflow: WorkflowDep,
    page: PageDep,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    context = _conversation_context(workflow, user, conversation_id, None)
    context["done"] = done
    return page.render("embed_panel.html", context, user=user, embed=True)
