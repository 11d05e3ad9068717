"""`replydesk bench ...` commands. The measuring code is in this package (e.g. `bench/kb.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Benchmarks; results are written as JSON under bench/results/.")


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s.strip().replace("_", "")) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"sizes must be comma-separated integers, got {text!r}") from exc
    if not sizes or min(sizes) < 1:
        raise typer.BadParameter("give at least one positive size")
    return sizes


@app.command()
def retrieval(
    sizes: Annotated[
        str, typer.Option(help="Comma-separated collection sizes.")
    ] = "1000,10000,100000,1000000",
    types: Annotated[str, typer.Option(help="Index types to compare: flat, ivf, hnsw.")] = "flat,ivf,hnsw",
    dim: Annotated[
        int | None, typer.Option(help="Vector dimension (default: the embedding model's).")
    ] = None,
    queries: Annotated[int, typer.Option(min=10, help="Queries per size.")] = 200,
    recall_target: Annotated[float, typer.Option(help="recall@10 the IVF/HNSW tuning aims for.")] = 0.95,
    hnsw_max: Annotated[
        int, typer.Option(help="Skip HNSW above this size (its build time on 2 cores).")
    ] = 200_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="JSON output (default bench/results/retrieval-<time>.json).")
    ] = None,
) -> None:
    """ANN index types on clustered synthetic vectors: build time, memory, query p50/p95, recall@10 vs \
exact."""
    from bench import write_result
    from bench.kb import run_ann_bench

    type_list = [t.strip() for t in types.split(",") if t.strip()]
    unknown = set(type_list) - {"flat", "ivf", "hnsw"}
    if unknown:
        raise typer.BadParameter(f"unknown index types: {', '.join(sorted(unknown))}")
    if dim is None:
        from service.container import Container
        from service.settings import get_settings

        dim = Container(get_settings()).embedder.dimension
    result = run_ann_bench(
        _sizes(sizes),
        dim,
        types=type_list,
        queries=queries,
        recall_target=recall_target,
        hnsw_max=hnsw_max,
        seed=seed,
        log=typer.echo,
    )
    typer.echo(f"written to {write_result(result, out, 'retrieval')}")


@app.command()
def reload(
    rounds: Annotated[int, typer.Option(min=1, help="Changes measured per path.")] = 5,
    articles: Annotated[Path | None, typer.Option(help="Articles to copy (default: the sample KB).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="JSON output (default bench/results/kb-reload-<time>.json).")
    ] = None,
) -> None:
    """Seconds from an article upsert (API) or file edit + `kb build` to search seeing the change."""
    from bench import write_result
    from bench.kb import run_reload_bench
    from kb_index import SAMPLE_ARTICLES_DIR

    result = run_reload_bench(articles or SAMPLE_ARTICLES_DIR, rounds=rounds, log=typer.echo)
    typer.echo(f"written to {write_result(result, out, 'kb-reload')}")


@app.command()
def drafting(
    rounds: Annotated[int, typer.Option(min=10, help="Passes over the bundled message mix.")] = 200,
    out: Annotated[
        Path | None, typer.Option(help="JSON output (default bench/results/drafting-<time>.json).")
    ] = None,
) -> None:
    """Template fallback drafts (target ≤ 5 ms) and the LLM path's overhead excluding the LLM call \
(≤ 10 ms)."""
    from bench import write_result
    from bench.drafting import run_drafting_bench

    typer.echo(f"written to {write_result(run_drafting_bench(rounds, log=typer.echo), out, 'drafting')}")


@app.command("body-limit")
def body_limit(
    size_mb: Annotated[int, typer.Option(min=2, max=200, help="Size of each oversized POST, in MiB.")] = 50,
    uploads: Annotated[int, typer.Option(min=1, help="POSTs per server.")] = 3,
    out: Annotated[
        Path | None, typer.Option(help="JSON output (default bench/results/body-limit-<time>.json).")
    ] = None,
) -> None:
    """An oversized authenticated POST against the default 1 MiB limit and against a limit above it (the
    former behaviour), side by side: response time and /health latency during the uploads."""
    from bench import write_result
    from bench.body_limit import run_body_limit_bench

    result = run_body_limit_bench(size_mb=size_mb, uploads=uploads, log=typer.echo)
    typer.echo(f"written to {write_result(result, out, 'body-limit')}")


@app.command()
def console(
    conversations: Annotated[int, typer.Option(min=1, help="Open conversations to seed.")] = 500,
    thread: Annotated[int, typer.Option(min=2, help="Messages in the long conversation's thread.")] = 50,
    requests: Annotated[int, typer.Option(min=1, help="Timed requests per page (after a warm-up).")] = 30,
    browser: Annotated[
        int, typer.Option(min=0, help="Ingests timed until their row shows in Chromium, per poll interval.")
    ] = 10,
    default_poll: Annotated[
        bool, typer.Option(help="Also time the browser with the default REPLYDESK_EVENTS_POLL_S (1.0 s).")
    ] = True,
    out: Annotated[
        Path | None, typer.Option(help="JSON output (default bench/results/console.json).")
    ] = None,
) -> None:
    """The agent console (issue #13): server time per page (p50/p95/max) with many open conversations and a
    long thread, next to the JSON API; ingest → queue row in a browser at a 0.25 s and the default poll."""
    from bench.console import run_console_bench, table, write

    result = run_console_bench(
        conversations=conversations,
        thread=thread,
        requests=requests,
        browser=browser,
        default_poll=default_poll,
        log=typer.echo,
    )
    typer.echo(table(result))
    typer.echo(f"written to {write(result, out)}")


@app.command("channel-ack")
def channel_ack(
    singles: Annotated[int, typer.Option(min=0, help="POSTs of 1 message per mode.")] = 30,
    batches: Annotated[int, typer.Option(min=0, help="POSTs of --batch-size messages per mode.")] = 10,
    batch_size: Annotated[int, typer.Option(min=2, max=1000, help="Messages in a batch POST.")] = 100,
    mode: Annotated[
        list[str] | None, typer.Option(help="Run only this mode (repeatable): background, inline.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="JSON output (default bench/results/channel-ack-<time>.json).")
    ] = None,
) -> None:
    """Signed WhatsApp webhook POSTs of 1 and of 100 messages (issue #14): time to the 200 with the pipeline
    after the answer (background, the default) and inside the request (inline, the former behaviour), side by
    side, and how long the background workers take until every message has its drafts."""
    from bench import write_result
    from bench.channel_ack import MODES, run_channel_ack_bench, table

    modes = tuple(mode or MODES)
    unknown = set(modes) - set(MODES)
    if unknown:
        raise typer.BadParameter(f"unknown modes: {', '.join(sorted(unknown))} (background, inline)")
    result = run_channel_ack_bench(
        singles=singles, batches=batches, batch_size=batch_size, modes=modes, log=typer.echo
    )
    typer.echo(table(result))
    typer.echo(f"written to {write_result(result, out, 'channel-ack')}")
