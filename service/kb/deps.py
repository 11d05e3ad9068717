"""`Annotated[..., Depends()]` alias for the knowledge base (tests swap it with
`app.dependency_overrides`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.kb.service import KnowledgeBase


def get_knowledge_base(request: Request) -> KnowledgeBase:
    return request.app.state.container.kb


KnowledgeBaseDep = Annotated[KnowledgeBase, Depends(get_knowledge_base)]
