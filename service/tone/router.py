"""POST /v1/tone/check: emoji and tone findings for a reply before it is sent."""

from __future__ import annotations

from fastapi import APIRouter

from service.container import Container
from service.deps import ToneCheckerDep
from service.tone.models import ToneCheckRead, ToneCheckRequest

router = APIRouter(prefix="/tone", tags=["tone"])


def tone_health(container: Container) -> dict:
    """`Container.health_checks["tone"]`: rule count and rules file once the checker is loaded (it loads lazily)."""
    if "tone" not in container.__dict__:
        return {"status": "not_loaded", "detail": {}}
    return {"status": "ok", "detail": container.tone.describe()}


Container.health_checks["tone"] = tone_health


@router.post(
    "/check",
    response_model=ToneCheckRead,
    summary="Check a reply's emoji, register and wording for the customer's culture and situation",
    responses={422: {"description": "Blank or over-long text, or a locale that is not a BCP 47 tag."}},
)
def check_tone(body: ToneCheckRequest, checker: ToneCheckerDep) -> ToneCheckRead:
    """Findings (`block` = must not be sent, `warn` = have a look, `info` = note), `ok` (no `block` finding) and a
    `suggested_text` with the offending emoji removed. A well-formed but unknown locale is not an error: only the
    rules that apply everywhere are used and `locale_recognised` is false."""
    return checker.check(body.text, body.locale, body.context)
