"""`Annotated[..., Depends()]` aliases: the only way routers reach process-wide components."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from service.container import Container
from service.drafting.drafter import Drafter
from service.kb.service import KnowledgeBase
from service.settings import Settings
from service.tone.checker import ToneChecker
from service.workflow.service import Workflow


def get_container(request: Request) -> Container:
    return request.app.state.container


def get_app_settings(request: Request) -> Settings:
    return request.app.state.container.settings


ContainerDep = Annotated[Container, Depends(get_container)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_tone_checker(request: Request) -> ToneChecker:
    return request.app.state.container.tone


ToneCheckerDep = Annotated[ToneChecker, Depends(get_tone_checker)]


def get_knowledge_base(request: Request) -> KnowledgeBase:
    return request.app.state.container.kb


KnowledgeBaseDep = Annotated[KnowledgeBase, Depends(get_knowledge_base)]


def get_drafter(request: Request) -> Drafter:
    return request.app.state.container.drafter


DrafterDep = Annotated[Drafter, Depends(get_drafter)]


def get_workflow(request: Request) -> Workflow:
    return request.app.state.container.workflow


WorkflowDep = Annotated[Workflow, Depends(get_workflow)]


def get_triage_pipeline(request: Request) -> Callable[..., Any]:
    """The ingest pipeline (triage + retrieval + drafts + tone); tests may swap it with dependency_overrides."""
    return request.app.state.container.triage_pipeline


TriagePipelineDep = Annotated[Callable[..., Any], Depends(get_triage_pipeline)]
