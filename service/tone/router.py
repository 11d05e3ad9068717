"""POST /v1/tone/check: emoji and tone findings for a reply before it is sent."""

from __future__ import annotations

from fastapi import APIRouter

from service.tone.deps import ToneCheckerDep
from service.tone.models import ToneCheckRead, ToneCheckRequest

router = APIRouter(prefix="/tone", tags=["tone"])


@router.post(
    "/check",
    response_model=ToneCheckRead,
    summary="Check a reply's emoji, register and wording for the customer's culture and situation",
    responses={422: {"description": "Blank or over-long text, or a locale that is not a BCP 47 tag."}},
)
def check_tone(body: ToneCheckRequest, checker: ToneCheckerDep) -> ToneCheckRead:
    """Findings (`block` = must not be sent, `warn` = have a look, `info` = note), `ok` (no `block` finding)
    and a `suggested_text` with the offending emoji removed. A well-formed but unknown locale is not an error:
    only the rules that apply everywhere are used and `locale_recognised` is false."""
    return checker.check(body.text, body.locale, body.context)
