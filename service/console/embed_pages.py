"""The conversation panel as a Chatwoot Dashboard App (an iframe in Chatwoot's sidebar)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.auth.deps import KeyStoreDep
from service.console.conversation_pages import conversation_context
from service.console.deps import (
    ReaderDep,
)
from service.console.pages import PageDep, PathId, router
from service.console.session import (
    EMBED_SESSION_COOKIE,
)
from service.workflow.deps import WorkflowDep
from service.workflow.models import (
    MAX_ROW_ID,
)

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
    context = conversation_context(workflow, user, conversation_id, None)
    context["done"] = done
    return page.render("embed_panel.html", context, user=user, embed=True)
