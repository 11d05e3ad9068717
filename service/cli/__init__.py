"""`replydesk` command line: serve the API, run the background worker, triage a message, build the knowledge
base, run evaluations."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    help="ReplyDesk: triage, retrieval, drafts and tone checks for messaging support.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
) -> None:
    """Start the HTTP API (uvicorn)."""
    import uvicorn

    from service.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        "service.api:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


@app.command()
def worker() -> None:
    """Run the background loops only (webhook and channel deliveries, SLA alerts, pending receipts, queued
    pipelines), no HTTP server; any number of these may run on one PostgreSQL. Stops cleanly on SIGTERM or
    SIGINT. Runs the loops even when REPLYDESK_WORKERS_ENABLED=false (that setting is for the API
    replicas)."""
    import logging
    import signal
    import threading
    from types import FrameType

    from service.container import Container
    from service.logging import configure_logging
    from service.redaction import redact
    from service.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level)
    log = logging.getLogger("replydesk.worker")
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("worker stopping", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    # installed before the (slow) start: a signal during model loading stops the worker right after it
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    container = Container(settings)
    worker_id: str | None = None
    try:
        container.start(warm=True, workers=True, kind="worker")
        worker_id = container.worker_id
        log.info(
            "worker started",
            extra={
                "worker_id": worker_id,
                "database": redact(settings.resolved_database_url),
                "pipeline_workers": settings.pipeline_workers,
            },
        )
        while not stopping.wait(0.5):
            pass
    finally:
        container.close()
    log.info("worker stopped", extra={"worker_id": worker_id})


@app.command()
def triage(
    text: Annotated[str, typer.Argument(help="The customer's message.")],
    locale: Annotated[str | None, typer.Option(help="Locale hint, e.g. es-MX.")] = None,
    channel: Annotated[str | None, typer.Option(help="whatsapp | messenger | sms | webchat")] = None,
) -> None:
    """Triage one message and print the same JSON as POST /v1/triage."""
    from service.container import Container
    from service.settings import get_settings
    from service.triage.models import TriageRequest

    container = Container(get_settings())
    request = TriageRequest(text=text, locale=locale, channel=channel)
    result = container.pipeline.run(request)
    typer.echo(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2))


def _register_subcommands() -> None:
    from eval.cli import app as eval_app

    app.add_typer(eval_app, name="eval", help="Offline evaluation commands.")

    from service.cli.keys import app as keys_app

    app.add_typer(keys_app, name="keys", help="API keys: create, list, revoke.")

    from bench.cli import app as bench_app
    from service.cli.kb import app as kb_app

    app.add_typer(kb_app, name="kb", help="Knowledge base: lint articles, build the index, search it.")
    app.add_typer(bench_app, name="bench", help="Benchmarks (results under bench/results/).")


_register_subcommands()

if __name__ == "__main__":
    app()
