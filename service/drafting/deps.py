"""`Annotated[..., Depends()]` aliases for the drafter and the LLM-bound work pool (tests swap them with
`app.dependency_overrides`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.drafting.drafter import Drafter
from service.drafting.offload import LLMWorkPool


def get_drafter(request: Request) -> Drafter:
    return request.app.state.container.drafter


async def get_llm_work(request: Request) -> LLMWorkPool:
    # async: resolving it must not need a thread of the shared request pool it exists to keep free
    return request.app.state.container.llm_work


DrafterDep = Annotated[Drafter, Depends(get_drafter)]
LLMWorkDep = Annotated[LLMWorkPool, Depends(get_llm_work)]
