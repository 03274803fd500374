"""`berth wasm run`: a WASI module run here under limits, its output streamed to the terminal."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click

from backends.errors import BerthError
from backends.parse_pairs import ENV_PAIR, FOLDER
from backends.wasm.history import TaskHistory
from backends.wasm.pool import OUTPUT_KEEP
from backends.wasm.record import TaskRecord, module_label, new_task_id, output_lines, state_for
from backends.wasm.runtime import run_task
from backends.wasm.spec import Limits, Preopen, TaskResult, TaskSpec
from backends.wasm.store import ModuleStore
from tui.cli.context import CliContext
from tui.cli.params import Parsed, Size, limits_options
from tui.read_only import refusal

F = TypeVar("F", bound=Callable[..., Any])
TIMEOUT_EXIT = 124
"""Exit status after the wall-time limit, as timeout(1) uses."""


class _Tail:
    """The module's output passed straight on to ours as it comes, its last `keep` bytes of each
    stream kept for the task history."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.kept = {"stdout": bytearray(), "stderr": bytearray()}

    def __call__(self, stream: str, chunk: bytes) -> None:
        out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        out.write(chunk)
        out.flush()
        kept = self.kept[stream]
        kept += chunk
        del kept[: max(0, len(kept) - self.keep)]


def _run_interruptibly(spec: TaskSpec, store: ModuleStore, stream: _Tail | None) -> TaskResult:
    """Run the task in a thread so Ctrl-C (which Python only sees between calls) cancels it."""
    cancel = threading.Event()
    finished = threading.Event()
    outcome: list[TaskResult | BaseException] = []

    def work() -> None:
        try:
            outcome.append(run_task(spec, store, stream, cancel))
        except BaseException as exc:  # handed to the main thread, which reports it
            outcome.append(exc)
        finally:
            finished.set()

    # Daemon: should wasmtime ever not stop, a second Ctrl-C still ends berth.
    threading.Thread(target=work, name="berth-wasm-run", daemon=True).start()
    try:
        finished.wait()
    except KeyboardInterrupt:
        cancel.set()
        finished.wait()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _remember(
    obj: CliContext, spec: TaskSpec, result: TaskResult, created: float, output: tuple[bytes, bytes]
) -> None:
    """Keep the run in the task history, as the console's pool keeps its tasks: `berth wasm tasks`
    lists it (as `docker ps -a` lists what `docker run` ran). Not when berth runs read-only; a
    history that cannot be written costs a warning, never the run's exit code."""
    if refusal(obj.load(), [], flag=obj.read_only):
        return
    record = TaskRecord(
        id=new_task_id(),
        name=spec.name or module_label(spec),
        spec=spec,
        state=state_for(result),
        result=result,
        created_at=created,
        started_at=created,
        ended_at=time.time(),
    )
    lines = output_lines(*(data.decode("utf-8", "replace") for data in output))

    async def write() -> None:
        history = TaskHistory()
        try:
            await history.add([(record, lines)])
        finally:
            await history.close()

    try:
        asyncio.run(write())
    except BerthError as exc:
        click.echo(f"berth: task {record.id} ran but is not in the task history: {exc.message}", err=True)


def _folder_option(flag: str, name: str, how: str) -> Callable[[F], F]:
    """A repeatable option giving the module a folder of ours, HOSTDIR[:GUESTDIR]."""
    return click.option(
        flag, name, multiple=True, type=Parsed(FOLDER), metavar="HOSTDIR[:GUESTDIR]", help=f"Preopen, {how}."
    )


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("module")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[-- ARGS...]")
@limits_options
@click.option("--max-output", type=Size(), default="16MiB", show_default=True, help="Most stdout+stderr.")
@click.option(
    "--env", multiple=True, type=Parsed(ENV_PAIR), metavar="K=V", help="An environment variable (repeatable)."
)
@_folder_option("--dir", "dirs", "read-only")
@_folder_option("--rw-dir", "rw_dirs", "writable")
@click.option(
    "--stdin", "stdin", type=click.File("rb"), help="File whose bytes are the module's stdin (- for ours)."
)
@click.pass_obj
def wasm_run(
    obj: CliContext,
    module: str,
    args: tuple[str, ...],
    fuel: int | None,
    memory: int | None,
    timeout: float | None,
    max_output: int,
    env: tuple[tuple[str, str], ...],
    dirs: tuple[tuple[str, str], ...],
    rw_dirs: tuple[tuple[str, str], ...],
    stdin: BinaryIO | None,
) -> None:
    """Run MODULE (a .wasm file, a stored sha256: ref, or a wasi/wasm image on --host's Docker)
    with ARGS; exit with its exit code.

    Its stdout and stderr stream to ours as it writes them. If it fails another way (a trap, out
    of fuel or memory, an invalid module...) berth says so on stderr and exits 1; 124 when it
    timed out. With --json, prints how it ended and its output as one JSON object instead.
    The run is kept in the task history (`berth wasm tasks`, the console's Wasm tasks pane).
    """
    if rw_dirs:
        # A task runs in its sandbox and changes nothing outside it, so it runs read-only too;
        # but a writable folder is a change outside it.
        obj.refuse_if_read_only([])
    spec = TaskSpec(
        module=module,
        args=args,
        env=env,
        stdin=stdin.read() if stdin is not None else b"",
        dirs=tuple(Preopen(*d, False) for d in dirs) + tuple(Preopen(*d, True) for d in rw_dirs),
        limits=Limits(fuel=fuel, memory=memory, timeout=timeout, max_output=max_output),
        name=Path(module).name,
    )
    from tui.cli.wasm_tasks import image_task, is_image  # Docker loads only for images

    cleanup = None
    asked = spec  # what the history keeps: the image by name, not the module taken from it
    if is_image(module):
        from backends.parse_images import parse_image_ref

        asked = replace(spec, module=b"", image=parse_image_ref(module), host=obj.host, name="")
        spec, cleanup = image_task(obj, asked)
    created = time.time()
    tail = None if obj.json else _Tail(OUTPUT_KEEP)
    try:
        result = _run_interruptibly(spec, ModuleStore(), tail)
    finally:
        if cleanup is not None:
            cleanup()
    if tail is None:
        output = (result.stdout[-OUTPUT_KEEP:], result.stderr[-OUTPUT_KEEP:])
    else:
        output = (bytes(tail.kept["stdout"]), bytes(tail.kept["stderr"]))
    _remember(obj, asked, result, created, output)
    if obj.json:
        click.echo(
            json.dumps(
                {
                    **result.to_json(),
                    "stdout": result.stdout.decode(errors="replace"),
                    "stderr": result.stderr.decode(errors="replace"),
                }
            )
        )
    if result.kind == "exit":
        sys.exit(result.exit_code)
    if not obj.json:
        click.echo(f"berth: {result.message}", err=True)
    if result.kind == "cancelled":
        sys.exit(130)  # only Ctrl-C cancels a task here
    sys.exit(TIMEOUT_EXIT if result.kind == "timeout" else 1)
