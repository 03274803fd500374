"""Click parameter types read by berth's input kinds (backends' grammars), and the limit options
shared by the verbs that run modules (wasm run, the broker's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from backends.errors import Invalid
from backends.units import COUNT, SIZE, TIME_LIMIT, Grammar

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class Parsed(click.ParamType[T]):
    """A value read by one of berth's input kinds (a backends `Grammar`): the parser the console's
    forms use, refusing with the same sentence (click names the option)."""

    def __init__(self, grammar: Grammar[T], name: str = "") -> None:
        self.grammar = grammar
        self.name = name or grammar.kind

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> T:
        """`value` read by the grammar's parser (a default given already read is kept)."""
        if not isinstance(value, str):
            return value  # type: ignore[return-value]  # click passes converted defaults back in
        try:
            return self.grammar.parse(value)
        except Invalid as exc:
            self.fail(str(exc), param, ctx)


def Size() -> Parsed[int]:  # called where a type goes, like click.IntRange()
    """A byte count as people write it: 64MiB, 1GB, 65536."""
    return Parsed(SIZE)


def Duration() -> Parsed[float]:
    """Seconds that limit something, written 500ms, 90s, 10m, 1h30m or 1.5."""
    return Parsed(TIME_LIMIT, "duration")


def limits_options(command: F) -> F:
    """The --fuel, --memory and --timeout options of every verb that runs a module."""
    command = click.option(
        "--timeout", type=Duration(), help="Stop after this wall time: 500ms, 30s, 2m, 1.5..."
    )(command)
    command = click.option(
        "--memory", type=Size(), help="Most linear memory the module may have: 64MiB, 1GB..."
    )(command)
    return click.option(
        "--fuel", type=Parsed(COUNT, "count"), help="Stop after this much fuel (~instructions)."
    )(command)
