"""`replydesk keys create|list|revoke`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from service.auth.models import ApiKeyCreate, Role
from service.errors import ReplyDeskError

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def _container():
    from service.container import Container
    from service.settings import get_settings

    return Container(get_settings())


@app.command("create")
def create(
    role: Annotated[Role, typer.Option(help=" | ".join(r.value for r in Role))],
    name: Annotated[str, typer.Option(help="Who or what uses the key.")],
    rate_limit: Annotated[str | None, typer.Option(help="Own limit, e.g. 120/minute.")] = None,
) -> None:
    """Create a key; its secret is printed alone on the last line (and never again)."""
    try:
        created = _container().keys.create(ApiKeyCreate(name=name, role=role, rate_limit=rate_limit))
    except ReplyDeskError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"created {created.id} role={created.role.value} name={created.name}")
    typer.echo("store this key now; only its hash is kept:")
    typer.echo(created.key)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    active: Annotated[bool, typer.Option(help="Only keys that are not revoked.")] = False,
) -> None:
    """List keys (id, role, name, prefix, state)."""
    keys = _container().keys.list(include_revoked=not active)
    if as_json:
        typer.echo(json.dumps([k.model_dump(mode="json") for k in keys], indent=2))
        return
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        typer.echo(f"{k.id}\t{k.role.value}\t{k.name}\t{k.prefix}…\t{state}")


@app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")]) -> None:
    """Revoke a key: it stops working at once in new processes, within seconds in running ones."""
    try:
        k = _container().keys.revoke(key_id)
    except ReplyDeskError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"revoked {k.id} ({k.name})")
