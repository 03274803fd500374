"""`berth wasm …`: the group of the WASI verbs, each loaded only when it runs."""

from __future__ import annotations

import click

from tui.cli.lazy_group import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy_subcommands={"run": "tui.cli.wasm_run:wasm_run", "tasks": "tui.cli.wasm_tasks:wasm_tasks"},
)
def wasm() -> None:
    """Run WASI modules with limits (wasmtime, here)."""
