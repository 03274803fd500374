"""The one progress line the CLI draws on stderr while a long verb runs (a move, a backup, a
copy, an update), redrawn in place; only when a person watches: a terminal, and no --json."""

from __future__ import annotations

import sys

import click

from tui.cli.context import CliContext

_REDRAW = "\r\033[K"
"""Back to the line's start, then erase it (ECMA-48)."""


class ProgressLine:
    """A line of progress on stderr; says nothing when stderr is no terminal or --json is on."""

    def __init__(self, obj: CliContext) -> None:
        self.live = not obj.json and sys.stderr.isatty()
        """Whether it draws at all."""

    def show(self, text: str) -> None:
        """Put `text` in place of what the line said."""
        if self.live:
            click.echo(f"{_REDRAW}{text}", err=True, nl=False)

    def end(self) -> None:
        """Erase the line, so what the verb prints next starts clean."""
        if self.live:
            click.echo(_REDRAW, err=True, nl=False)
