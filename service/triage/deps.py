"""`Annotated[..., Depends()]` alias for the triage service (tests swap it with
`app.dependency_overrides`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.triage.service import TriageService


def get_triage_service(request: Request) -> TriageService:
    return request.app.state.container.triage


TriageServiceDep = Annotated[TriageService, Depends(get_triage_service)]
