"""The console's pages and forms, one module per use case; thin: each route reads or decides through the same
`Workflow` as the API (so edit distance, who and when are kept the same way) and renders a template.

Every page works as plain HTML (forms post and redirect back); htmx swaps fragments where it is loaded: the
queue rows and the thread on server-sent events, tone findings while the agent types, presence every few
seconds. Importing the modules registers their routes on the one `router`."""

from __future__ import annotations

from service.console import (  # noqa: F401 (imported for their routes)
    conversation_pages,
    embed_pages,
    kpi_pages,
    queue_pages,
    signin,
)
from service.console.pages import router

__all__ = ["router"]
