"""`replydesk kb build | search | lint`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Knowledge base: lint articles, build the index, search it.")


def _settings(articles: Path | None = None, index_dir: Path | None = None, index_type: str | None = None):
    from service.settings import get_settings

    settings = get_settings()
    update: dict = {}
    if articles is not None:
        update["kb_articles_dir"] = articles
    if index_dir is not None:
        update["kb_index_dir"] = index_dir
    if index_type is not None:
        update["kb_index_type"] = index_type
    return settings.model_copy(update=update) if update else settings


@app.command()
def lint(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Articles directory or one article file (default: the configured articles directory)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the issues as JSON.")] = False,
) -> None:
    """Mobile-friendliness and consistency checks; exits 1 when any error is found."""
    from service.kb.lint import default_intent_names, errors_of, lint_path

    settings = _settings()
    target = path or settings.kb_articles_dir
    if not target.exists():
        typer.echo(f"error: {target} does not exist", err=True)
        raise typer.Exit(2)
    root = None
    if target.is_file() and Path(settings.kb_articles_dir).resolve() in target.resolve().parents:
        root = Path(settings.kb_articles_dir)
    issues = lint_path(
        target,
        known_intents=default_intent_names(settings.intents_path),
        help_base_url=settings.kb_help_base_url,
        allowed_link_hosts=settings.kb_link_allowed_hosts,
        collection_root=root,
    )
    errors = errors_of(issues)
    if as_json:
        typer.echo(json.dumps([i.as_dict() for i in issues], indent=2, ensure_ascii=False))
    else:
        for issue in issues:
            typer.echo(str(issue))
        from service.kb.articles import article_files

        files = len(article_files(target))
        typer.echo(f"{files} file(s) checked: {len(errors)} error(s), {len(issues) - len(errors)} warning(s)")
    if errors:
        raise typer.Exit(1)


@app.command()
def build(
    articles: Annotated[Path | None, typer.Option(help="Articles directory (default: settings).")] = None,
    index_dir: Annotated[Path | None, typer.Option(help="Index directory (default: data_dir/index).")] = None,
    index_type: Annotated[
        str | None, typer.Option(help="auto | flat | ivf | hnsw (default: settings).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Publish a new version even if nothing changed.")] = False,
    skip_invalid: Annotated[
        bool, typer.Option(help="Leave out articles that fail lint instead of failing.")
    ] = False,
) -> None:
    """Incrementally build and atomically publish the index (only changed or new articles are embedded)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    from service.container import Container
    from service.errors import InvalidInput
    from service.kb import store

    settings = _settings(articles, index_dir, index_type)
    kb = Container(settings).kb
    if not Path(settings.kb_articles_dir).is_dir():
        typer.echo(f"error: articles directory {settings.kb_articles_dir} does not exist", err=True)
        raise typer.Exit(2)
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[stage], completed=done if total else 1, total=max(total, 1))

        try:
            report = kb.build(skip_invalid=skip_invalid, force=force, progress=progress)
        except store.BuildRejected as exc:
            bar.stop()
            for issue in exc.issues:
                typer.echo(str(issue), err=True)
            typer.echo(f"error: {exc}. Fix them (see `replydesk kb lint`) or pass --skip-invalid.", err=True)
            raise typer.Exit(1) from exc
        except InvalidInput as exc:  # an unreadable custom taxonomy
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(2) from exc
    for source, problems in report.skipped.items():
        typer.echo(f"skipped {source}: {len(problems)} lint error(s)", err=True)
    verb = "published" if report.published else "unchanged, kept"
    typer.echo(
        f"{verb} {report.build_id}: {report.articles} articles, {report.chunks} chunks "
        f"({report.index_type}); embedded {report.embedded_chunks}, reused {report.reused_chunks}; "
        f"+{len(report.added)} ~{len(report.updated)} -{len(report.removed)} in {report.duration_s:.2f}s "
        f"-> {settings.resolved_index_dir}"
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What the customer asked.")],
    locale: Annotated[str | None, typer.Option(help="BCP 47 locale, e.g. es-MX.")] = None,
    k: Annotated[int, typer.Option(min=1, max=50, help="How many articles.")] = 3,
    intent: Annotated[str | None, typer.Option(help="Only articles for this intent.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only articles with this tag (repeatable).")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the same JSON as GET /v1/kb/search.")
    ] = False,
) -> None:
    """Search the published index (the same hybrid retrieval as the API)."""
    from service.container import Container
    from service.errors import ReplyDeskError

    kb = Container(_settings()).kb
    try:
        page = kb.search_page(query, locale=locale, k=k, intent=intent, tags=tag)
    except ReplyDeskError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(page.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    if page.fallback:
        typer.echo(f"(no {locale} articles matched; showing {page.language})")
    for rank, hit in enumerate(page.hits, start=1):
        section = f" > {hit.matched_section}" if hit.matched_section else ""
        typer.echo(f"{rank}. [{hit.score:.2f}] {hit.title}{section}  ({hit.article_id}, {hit.locale})")
        typer.echo(f"   {hit.url}")
        typer.echo(f"   {hit.summary}")
    if not page.hits:
        typer.echo("no articles found")
