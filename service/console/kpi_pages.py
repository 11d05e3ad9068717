"""The KPI page: totals, per-day series and per-intent decisions, for charts and tables."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from service.console.deps import (
    KpiReaderDep,
)
from service.console.pages import PageDep, router
from service.workflow.deps import WorkflowDep
from service.workflow.kpis import compute_kpis

# -- KPIs ---------------------------------------------------------------------------------------------------


@router.get("/console/kpis", response_class=HTMLResponse)
def kpi_page(
    request: Request,
    user: KpiReaderDep,
    workflow: WorkflowDep,
    page: PageDep,
    days: Annotated[int, Query(ge=1, le=90)] = 14,
) -> HTMLResponse:
    now = workflow.clock.now()
    start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    overall = compute_kpis(workflow.db, start, now, now)
    series = []
    day = start
    while day < now:
        end = min(day + timedelta(days=1), now)
        k = compute_kpis(workflow.db, day, end, now)
        series.append(
            {
                "day": day.date().isoformat(),
                "frt_p50_min": _minutes(k.overall.first_response.p50_s),
                "frt_p90_min": _minutes(k.overall.first_response.p90_s),
                "sla_met_pct": k.overall.sla_met_pct,
                "conversations": k.overall.conversations,
            }
        )
        day = end
    intents = [
        {
            "intent": name,
            "approved": g.suggestions.approved,
            "edited": g.suggestions.edited,
            "rejected": g.suggestions.rejected,
        }
        for name, g in overall.per_intent.items()
        if g.suggestions.decided
    ]
    context = {
        "kpis": overall,
        "series": series,
        "days": days,
        # json.dumps escapes nothing HTML-relevant: `</` must not end the <script type="application/json">.
        "series_json": json.dumps(series).replace("</", "<\\/"),
        "intents_json": json.dumps(intents).replace("</", "<\\/"),
    }
    return page.render("kpis.html", context, user=user)


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)
