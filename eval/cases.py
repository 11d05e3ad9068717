"""Labelled evaluation cases stored as JSONL, one pydantic model per line, each with a unique `id`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

CaseT = TypeVar("CaseT", bound=BaseModel)


def load_jsonl_cases(path: Path, model: type[CaseT], what: str) -> list[CaseT]:
    """Parse every non-blank line as `model`; a bad line, an empty file or a repeated id is a ValueError."""
    cases: list[CaseT] = []
    with Path(path).open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                cases.append(model.model_validate_json(line))
            except ValidationError as exc:
                raise ValueError(f"{path}:{line_no}: not a {what}: {exc}") from exc
    if not cases:
        raise ValueError(f"{path}: no cases")
    dupes = sorted(i for i, n in Counter(getattr(c, "id") for c in cases).items() if n > 1)  # noqa: B009
    if dupes:
        raise ValueError(f"{path}: repeated case ids {dupes}")
    return cases
