"""`Annotated[..., Depends()]` aliases: the only way routers reach process-wide components."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.container import Container
from service.settings import Settings


def get_container(request: Request) -> Container:
    return request.app.state.container


def get_app_settings(request: Request) -> Settings:
    return request.app.state.container.settings


ContainerDep = Annotated[Container, Depends(get_container)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
