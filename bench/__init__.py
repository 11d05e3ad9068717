"""Benchmarks (`replydesk bench ...`); results are written as JSON under bench/results/."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path


def write_result(result: dict, out: Path | None, name: str) -> Path:
    if out is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out = Path("bench") / "results" / f"{name}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return out
