"""`berth wasm tasks` (the task history), and `wasi/wasm` images for `berth wasm run`."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable

import click

from backends.wasm.history import TaskHistory
from backends.wasm.record import TaskRecord
from backends.wasm.spec import TaskSpec
from tui.cli.context import CliContext
from tui.format import age, table


def is_image(module: str) -> bool:
    """True when `berth wasm run`'s MODULE names an image: neither a file here nor a stored ref."""
    return not module.startswith("sha256:") and not os.path.exists(module) and not module.endswith(".wasm")


def image_task(obj: CliContext, spec: TaskSpec) -> tuple[TaskSpec, Callable[[], None]]:
    """`spec` (whose `image` names a wasi/wasm image) made runnable from the chosen host's Docker:
    the module, argv, env and rootfs taken from the image; call the cleanup when it has run."""
    from backends.docker import DockerBackend
    from backends.wasm.oci import take_image

    assert spec.image is not None

    image = obj.run_on(DockerBackend.for_session, lambda backend: take_image(backend, spec.image or ""))
    return image.task_spec(spec), image.cleanup


@click.command("tasks")
@click.pass_obj
def wasm_tasks(obj: CliContext) -> None:
    """List finished wasm tasks from the history, newest first: those run in the console and by
    `berth wasm run` (--json: one object per task)."""

    async def read() -> list[TaskRecord]:
        history = TaskHistory()
        try:
            return await history.list()
        finally:
            await history.close()

    records = asyncio.run(read())
    if obj.json:
        click.echo(json.dumps([record.to_json() for record in records], indent=2))
        return
    now = time.time()
    click.echo(
        table(
            ["ID", "STATE", "MODULE", "EXIT", "DURATION", "FUEL", "ENDED", "MESSAGE"],
            [
                [
                    r.id,
                    r.state,
                    r.to_json()["module"],
                    "" if r.exit_code is None else str(r.exit_code),
                    "" if r.duration_ms is None else f"{r.duration_ms:.1f} ms",
                    "" if r.fuel_used is None else f"{r.fuel_used:,}",
                    age(now - r.ended_at) if r.ended_at else "",
                    r.to_json()["message"],
                ]
                for r in records
            ],
        )
    )
