"""`Annotated[..., Depends()]` alias for the message pipeline (tests swap it with
`app.dependency_overrides`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.pipeline.service import MessagePipeline


def get_message_pipeline(request: Request) -> MessagePipeline:
    return request.app.state.container.pipeline


MessagePipelineDep = Annotated[MessagePipeline, Depends(get_message_pipeline)]
