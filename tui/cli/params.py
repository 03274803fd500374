"""Click parameter types and options shared by the verbs that run modules (wasm run, the broker's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from backends.docker_logs import parse_duration
from backends.errors import Invalid
from backends.units import parse_size

F = TypeVar("F", bound=Callable[..., Any])


class Size(click.ParamType[int]):
    """A byte count as people write it: 64MiB, 1GB, 65536."""

    name = "size"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """Bytes in `value`."""
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except Invalid as exc:
            self.fail(exc.message, param, ctx)


class Duration(click.ParamType[float]):
    """Seconds, written 2, 1.5, 90s, 10m or 1h30m."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        """Seconds in `value`."""
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            seconds = float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
        except ValueError:
            self.fail(f"Not a duration: {text!r}. Write it like 30s, 2m or 1.5.", param, ctx)
        if seconds <= 0:
            self.fail("The timeout must be longer than 0 s.", param, ctx)
        return seconds


def limits_options(command: F) -> F:
    """The --fuel, --memory and --timeout options of every verb that runs a module."""
    command = click.option("--timeout", type=Duration(), help="Stop after this wall time: 30s, 2m, 1.5...")(
        command
    )
    command = click.option(
        "--memory", type=Size(), help="Most linear memory the module may have: 64MiB, 1GB..."
    )(command)
    return click.option(
        "--fuel", type=click.IntRange(min=1), help="Stop after this much fuel (~instructions)."
    )(command)
