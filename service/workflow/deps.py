"""`Annotated[..., Depends()]` alias for the workflow (tests swap it with `app.dependency_overrides`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.workflow.service import Workflow


def get_workflow(request: Request) -> Workflow:
    return request.app.state.container.workflow


WorkflowDep = Annotated[Workflow, Depends(get_workflow)]
