"""A conversation: the page and its fragments, presence, claim/assign, the tone preview, and every
decision (use a draft as is, edit, reject, own reply, resolve) through the same Workflow as the API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Form, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from service.console import views
from service.console.deps import (
    ConsoleUser,
    DeciderDep,
    ReaderDep,
)
from service.console.pages import Page, PageDep, PathId, back, page_url, router
from service.errors import NotFound
from service.workflow.deps import WorkflowDep
from service.workflow.models import (
    MAX_ROW_ID,
    ApproveRequest,
    AssignUpdate,
    RejectRequest,
    ReplyRequest,
    ResolveRequest,
)
from service.workflow.service import ToneBlocked, Workflow

# -- a conversation -----------------------------------------------------------------------------------------


def conversation_context(
    workflow: Workflow, user: ConsoleUser, conversation_id: int, edit: int | None
) -> dict[str, Any]:
    detail = workflow.conversation(conversation_id)
    analysis = workflow.latest_analysis(conversation_id)
    queue_ids = workflow.queue_order(limit=workflow.settings.console_queue_limit)
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
    context = conversation_context(workflow, user, conversation_id, edit)
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
    return back(page_url(conversation_id, user, done="assigned"), request)


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
    context = conversation_context(workflow, user, conversation_id, suggestion_id)
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
    return back(page_url(conversation_id, user, done=done), request)


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
    return back(page_url(suggestion.conversation_id, user, done="approved"), request)


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
    return back(page_url(suggestion.conversation_id, user, done="rejected"), request)


@router.post("/console/conversations/{conversation_id}/resolve")
def resolve(
    request: Request,
    conversation_id: PathId,
    user: DeciderDep,
    workflow: WorkflowDep,
) -> Response:
    workflow.resolve(conversation_id, ResolveRequest(), user.principal)
    return back(page_url(conversation_id, user, done="resolved"), request)
