"""`Annotated[..., Depends()]` alias for the drafter (tests swap it with `app.dependency_overrides`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.drafting.drafter import Drafter


def get_drafter(request: Request) -> Drafter:
    return request.app.state.container.drafter


DrafterDep = Annotated[Drafter, Depends(get_drafter)]
