"""`replydesk eval ...` commands. Each command lives next to its metric code in `eval/<part>.py`."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
