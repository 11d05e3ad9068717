"""`replydesk eval ...` commands. Each command lives next to its metric code in `eval/<part>.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)


def _uncached_embedder(settings):
    """The configured model and backend without the vector cache: a cache hit would hide the embedding
    time."""
    from service.embeddings import build_embedder

    return build_embedder(
        settings.embedding_model,
        backend=settings.embedding_backend,
        threads=settings.embedding_threads,
        cache_dir=None,
    )


def _split_names(value: str | None) -> list[str] | None:
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


@app.command("intents")
def intents(
    train: Annotated[
        Path,
        typer.Option(
            exists=True, dir_okay=False, help="Training rows: CSV, JSONL, CLINC JSON or a YAML taxonomy."
        ),
    ],
    test: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="Test rows: CSV, JSONL or CLINC JSON.")
    ],
    text_col: Annotated[str, typer.Option(help="Text column / field.")] = "text",
    label_col: Annotated[str, typer.Option(help="Label column / field.")] = "label",
    oos_label: Annotated[
        str | None, typer.Option(help="Label of out-of-scope rows (enables OOS metrics).")
    ] = None,
    train_splits: Annotated[
        str | None, typer.Option(help="CLINC-style .json only: comma-separated lists to train on.")
    ] = "train,oos_train",
    test_splits: Annotated[
        str | None, typer.Option(help="CLINC-style .json only: comma-separated lists to test on.")
    ] = "val,oos_val",
    out: Annotated[Path | None, typer.Option(help="Write the full JSON report here.")] = None,
    latency_n: Annotated[int, typer.Option(help="Test messages timed one at a time for latency.")] = 200,
) -> None:
    """Train the production intent classifier on TRAIN, score TEST: accuracy, macro-F1, ECE, OOS, latency."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from eval.intents import evaluate, summary_rows, write_report
    from eval.splits import load_rows
    from service.embeddings import get_embedder
    from service.errors import InvalidInput
    from service.settings import get_settings

    console = Console(stderr=True)
    settings = get_settings()
    try:
        train_rows = load_rows(
            train, text_col=text_col, label_col=label_col, splits=_split_names(train_splits)
        )
        test_rows = load_rows(test, text_col=text_col, label_col=label_col, splits=_split_names(test_splits))
    except InvalidInput as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    console.print(
        f"train: {len(train_rows)} rows, {len({r[1] for r in train_rows})} labels · "
        f"test: {len(test_rows)} rows · embedding {settings.embedding_model} ({settings.embedding_backend})"
    )
    embedder = get_embedder(settings.embedding_model, settings.resolved_cache_dir / "embeddings")
    uncached = _uncached_embedder(settings)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(step: str, done: int, total: int) -> None:
            key = step.split(":")[0]
            if key not in tasks:
                tasks[key] = bar.add_task(step, total=total)
            bar.update(tasks[key], completed=done, total=total, description=step)

        try:
            result = evaluate(
                train_rows,
                test_rows,
                embedder=embedder,
                oos_label=oos_label,
                latency_embedder=uncached,
                latency_n=latency_n,
                cache_dir=settings.resolved_cache_dir / "intent",
                progress=progress,
            )
        except InvalidInput as exc:
            console.print(f"[red]error:[/red] {exc.message}")
            raise typer.Exit(2) from exc
    report = result.report
    report["data"] = {
        "train": str(train),
        "test": str(test),
        "oos_label": oos_label,
        "embedding_model": settings.embedding_model,
        "embedding_backend": settings.embedding_backend,
    }
    table = Table(title="Intent evaluation")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in summary_rows(report):
        table.add_row(name, value)
    Console().print(table)
    worst = sorted(report["per_label"].items(), key=lambda kv: kv[1]["f1"])[:5]
    typer.echo("lowest F1: " + ", ".join(f"{k} {v['f1']:.2f}" for k, v in worst))
    if out is not None:
        write_report(report, out)
        typer.echo(f"report written to {out}")


@app.command("split")
def split(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Labelled CSV, JSONL or CLINC JSON.")
    ],
    out_dir: Annotated[Path, typer.Option(help="Writes train.<ext> and test.<ext> here.")],
    test_frac: Annotated[
        float, typer.Option(help="Share of rows (per label) that go to the test file.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Random seed of the stratified split.")] = 13,
    text_col: Annotated[str, typer.Option(help="Text column / field.")] = "text",
    label_col: Annotated[str, typer.Option(help="Label column / field.")] = "label",
    splits: Annotated[str | None, typer.Option(help="CLINC-style .json only: lists to read.")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl (default: like the input).")
    ] = None,
) -> None:
    """Carve a reproducible stratified train/test split from one labelled file."""
    from eval.splits import split_file
    from service.errors import InvalidInput

    try:
        summary = split_file(
            file,
            out_dir,
            test_frac=test_frac,
            seed=seed,
            text_col=text_col,
            label_col=label_col,
            splits=_split_names(splits),
            fmt=fmt,
        )
    except InvalidInput as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"{summary['n_train']} train / {summary['n_test']} test rows ({summary['n_labels']} labels, "
        f"seed {seed}) → {summary['train']}, {summary['test']}"
    )


@app.command("tone")
def tone(
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Labelled tone cases (JSONL).")],
    out: Annotated[Path | None, typer.Option(help="Write the full JSON report here.")] = None,
    rules: Annotated[
        Path | None, typer.Option(help="Rules file (default: the bundled service/tone/rules.yaml).")
    ] = None,
) -> None:
    """Precision and recall of the tone checker per rule and micro-averaged over all rules."""
    from eval.tone import run, summary_lines
    from service.tone.rules import RulesFileError

    try:
        report = run(data, out, rules)
    except (RulesFileError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for line in summary_lines(report):
        typer.echo(line)


@app.command("pii")
def pii(
    data: Annotated[
        list[Path] | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Labelled PII messages (JSONL); repeatable. Default: eval/data/pii/{dev,test}.jsonl.",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the full JSON report (misses, leaks) here.")] = None,
) -> None:
    """Recall per PII type, precision and false alarms on negatives, and the share of LLM requests (through
    the real Drafter, LLM answered in-process) that still contain a labelled value."""
    from eval.pii import DEFAULT_FILES, run, summary_lines
    from service.errors import InvalidInput
    from service.settings import get_settings

    try:
        report = run(data or list(DEFAULT_FILES), get_settings(), out)
    except InvalidInput as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    for line in summary_lines(report):
        typer.echo(line)


@app.command("urgency")
def urgency(
    data: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Labelled urgency messages (JSONL), or with --label-map an intent dataset.",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(help="Write the full JSON report (metrics and errors) here.")
    ] = None,
    label_map: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="YAML mapping urgency levels to the dataset's labels (e.g. "
            "eval/data/banking77_urgency.yaml); unmapped labels are skipped.",
        ),
    ] = None,
    text_col: Annotated[str, typer.Option(help="Text column (with --label-map).")] = "text",
    label_col: Annotated[str, typer.Option(help="Label column (with --label-map).")] = "label",
) -> None:
    """Accuracy, macro-F1, per-level precision/recall, confusion and critical recall of triage urgency."""
    from eval.urgency import run, summary_lines
    from service.container import Container
    from service.errors import InvalidInput
    from service.settings import get_settings

    container = Container(get_settings())
    try:
        report = run(
            data,
            out,
            container.triage.triage_batch,
            label_map=label_map,
            text_col=text_col,
            label_col=label_col,
        )
    except InvalidInput as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    for line in summary_lines(report):
        typer.echo(line)


@app.command("retrieval")
def retrieval(
    corpus: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="BEIR corpus.jsonl (_id, title, text).")
    ],
    queries: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="BEIR queries.jsonl (_id, text).")
    ],
    qrels: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="BEIR qrels.tsv (query-id, corpus-id, score).")
    ],
    k: Annotated[int, typer.Option(min=1, max=100, help="Cut-off of MRR and nDCG.")] = 10,
    mode: Annotated[str, typer.Option(help="dense | bm25 | hybrid | all")] = "all",
    tune_split: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            max=0.9,
            help="Tune fusion weights on this share of the queries (seeded) and report the rest.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the dev/test query split.")] = 13,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
) -> None:
    """recall@1/5/10, MRR@10, nDCG@10 and latency p50/p95 of dense, BM25 and hybrid retrieval (KB code
    path)."""
    import json

    from eval.retrieval import load_beir, run
    from service.container import Container
    from service.kb.retrieval import Mode
    from service.settings import get_settings

    modes = list(Mode) if mode == "all" else [Mode(mode)] if mode in {m.value for m in Mode} else None
    if modes is None:
        raise typer.BadParameter(f"--mode must be dense, bm25, hybrid or all, not {mode!r}")
    try:
        data = load_beir(corpus, queries, qrels)
    except (ValueError, KeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    settings = get_settings()
    container = Container(settings)
    # Queries are timed with an uncached instance of the same model: a cache hit would hide the embedding
    # time.
    uncached = _uncached_embedder(settings)
    report = run(
        data,
        container.embedder,
        modes=modes,
        weights=container.kb.weights,
        k=k,
        tune_split=tune_split,
        seed=seed,
        query_embedder=uncached,
    )

    def table(title: str, rows: dict) -> None:
        typer.echo(title)
        typer.echo(
            f"  {'mode':7s} {'R@1':>6s} {'R@5':>6s} {'R@10':>6s} {'MRR@' + str(k):>7s} "
            f"{'nDCG@' + str(k):>8s} "
            f"{'p50 ms':>7s} {'p95 ms':>7s}"
        )
        for name, m in rows.items():
            typer.echo(
                f"  {name:7s} {m['recall@1']:6.4f} {m['recall@5']:6.4f} {m['recall@10']:6.4f} "
                f"{m[f'mrr@{k}']:7.4f} {m[f'ndcg@{k}']:8.4f} {m['latency_ms']['p50']:7.1f} "
                f"{m['latency_ms']['p95']:7.1f}"
            )

    w = report["weights"]
    table(
        f"{report['queries']} queries, {report['documents']} documents ({report['chunks']} chunks), weights "
        f"dense={w['dense']} bm25={w['bm25']} rrf_k={w['rrf_k']}:",
        report["modes"],
    )
    if "tuning" in report:
        t = report["tuning"]
        tw = t["tuned_weights"]
        typer.echo(
            f"tuned on {t['dev_queries']} dev queries (seed {t['seed']}): dense={tw['dense']} "
            f"bm25={tw['bm25']} rrf_k={tw['rrf_k']}"
        )
        table("  dev half, tuned weights:", t["dev"])
        table("  test half, tuned weights:", t["test"])
        table("  test half, configured weights:", t["test_with_configured_weights"])
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        typer.echo(f"report written to {out}")


@app.command("run")
def run_suite(
    suite: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Suite file, e.g. eval/suites/default.yaml.")
    ],
    baseline: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="A report.json to compare with; exit 1 on regressions."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory for report.json and report.html.")] = Path("reports"),
    fast: Annotated[
        bool | None,
        typer.Option(
            "--fast/--full", help="Subsample the big sets (default: the suite's `mode`).", show_default=False
        ),
    ] = None,
    live: Annotated[
        bool, typer.Option(help="Drafts from the configured LLM endpoint instead of the cassette.")
    ] = False,
    record: Annotated[
        bool, typer.Option(help="With --live: record the LLM answers into the suite's cassette.")
    ] = False,
    only: Annotated[
        list[str] | None, typer.Option(help="Run only these parts (kind or kind/name); repeatable.")
    ] = None,
    write_baseline: Annotated[
        Path | None, typer.Option(help="Also write the metrics as a new baseline file.")
    ] = None,
) -> None:
    """Run every part of a suite (intents, urgency, retrieval, tone, drafts, pii) with peers; write JSON +
    HTML."""
    import json

    from eval.run import execute, summary_lines
    from service.errors import InvalidInput

    if record and not live:
        raise typer.BadParameter("--record needs --live")
    try:
        report, code = execute(
            suite,
            out=out,
            baseline=baseline,
            fast=fast,
            llm_mode="live" if live else "auto",
            record=record,
            only=only,
            progress=lambda m: typer.echo(m, err=True),
        )
    except InvalidInput as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    for line in summary_lines(report):
        typer.echo(line)
    typer.echo(f"report: {out / 'report.json'} and {out / 'report.html'}")
    if write_baseline is not None:
        write_baseline.parent.mkdir(parents=True, exist_ok=True)
        slim = {k: report[k] for k in ("suite", "mode", "seed", "created_at", "configuration", "metrics")}
        write_baseline.write_text(json.dumps(slim, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        typer.echo(f"baseline written to {write_baseline}")
    raise typer.Exit(code)


app.command("encoders")(__import__("eval.encoders", fromlist=["command"]).command)
app.command("oos")(__import__("eval.oos", fromlist=["cli"]).cli)
app.command("languages")(__import__("eval.languages", fromlist=["cli"]).cli)
