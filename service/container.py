"""Process-wide components, built once and shared by the routers and the CLI.

Each capability exposes one component here; routers reach them through the `Annotated[..., Depends()]` aliases in
`service/deps.py`, so tests can swap any of them with `app.dependency_overrides`.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

from service.settings import Settings

if TYPE_CHECKING:
    from service.embeddings import Embedder


class Container:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()

    @cached_property
    def embedder(self) -> Embedder:
        from service.embeddings import get_embedder

        return get_embedder(self.settings.embedding_model, self.settings.resolved_cache_dir / "embeddings")

    def warm_up(self) -> None:
        """Load what the first request would otherwise wait for."""
        _ = self.triage

    def close(self) -> None:
        for name in ("kb",):
            comp = self.__dict__.get(name)
            if comp is not None and hasattr(comp, "close"):
                comp.close()

    @cached_property
    def triage(self):
        from service.triage.service import TriageService

        return TriageService.from_settings(self.settings, self.embedder)

    def triage_pipeline(self, request):
        """Triage one message (the body of POST /v1/triage and `replydesk triage`)."""
        return self.triage.triage(request)

    def health(self) -> dict[str, dict]:
        """State of each component, without forcing any of them to load."""
        loaded = self.__dict__
        model = {"status": "ok" if "embedder" in loaded else "not_loaded",
                 "detail": {"embedding_model": self.settings.embedding_model}}
        if "triage" in loaded:
            model["detail"].update(self.triage.describe())
        states = {"model": model}
        for name, fn in self.health_checks.items():
            states[name] = fn(self)
        return states

    # name -> callable(container) -> {"status": ..., "detail": {...}}; capabilities register theirs here.
    health_checks: dict = {}
