"""A click group whose subcommands are imported only when one of them is wanted."""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """A group that names its subcommands by "module:attribute" and imports one only when it is
    run or its help is shown (click's "lazily loading subcommands" pattern), so a verb loads only
    what it uses."""

    def __init__(
        self, *args: object, lazy_subcommands: dict[str, str] | None = None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_subcommands = lazy_subcommands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every subcommand's name, the lazy ones included, sorted as click sorts its own."""
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The subcommand called `cmd_name`, importing its module the first time it is asked for."""
        where = self.lazy_subcommands.get(cmd_name)
        if where is None:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = where.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{where} is not a click command")
        return command
