"""`Annotated[..., Depends()]` alias for the tone checker (tests swap it with `app.dependency_overrides`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.tone.checker import ToneChecker


def get_tone_checker(request: Request) -> ToneChecker:
    return request.app.state.container.tone


ToneCheckerDep = Annotated[ToneChecker, Depends(get_tone_checker)]
