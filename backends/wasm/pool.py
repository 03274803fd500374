"""The local task pool: wasm tasks run concurrently in worker processes, with a bounded queue,
cancellation, live output and a history of finished tasks on disk.

Why processes: wasmtime-py holds the GIL for everything but the wasm call itself, so for short
tasks two threads ran slower than one here (20,000 trivial tasks: 4.4 s on one thread, 5.1 s on
two), and only long CPU-bound modules gained from a second thread (2.48 s -> 1.71 s for four,
against 1.57 s with two processes). One worker process per core scales both.

The processes are a `WorkerFleet` (fleet.py, the provider's too); the pool adds the bounded
queue, image tasks, live output for viewers and the history. Everything it changes happens on the
event loop, where the fleet reports, so listeners and output subscribers are called there too.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from backends import paths
from backends.errors import BerthError, Conflict, NotFound
from backends.streams import LogLine
from backends.wasm.fleet import FleetHooks, WorkerFleet
from backends.wasm.history import TaskHistory
from backends.wasm.record import TaskRecord, describe, module_label, new_task_id, state_for
from backends.wasm.spec import TaskResult, TaskSpec

if TYPE_CHECKING:
    from backends.hosts import HostSession

__all__ = ["SessionFor", "TaskPool", "TaskRecord"]

SessionFor = Callable[[str], "HostSession"]
"""How the pool reaches an inventory host by name (to take a `wasi/wasm` image from its Docker)."""

OUTPUT_KEEP = 128 * 1024
"""Bytes of output lines kept per task: replayed to a new viewer and written to history."""


@dataclasses.dataclass(eq=False)
class _Live:
    """What the pool keeps for a task that has not finished: its output and who watches it."""

    run_spec: TaskSpec
    cleanup: Callable[[], None] | None
    done: asyncio.Future[TaskRecord]
    lines: deque[LogLine] = dataclasses.field(default_factory=deque)
    kept_bytes: int = 0
    partial: dict[str, str] = dataclasses.field(default_factory=dict)
    decoders: dict[str, codecs.IncrementalDecoder] = dataclasses.field(default_factory=dict)
    watchers: list[asyncio.Queue[list[LogLine] | None]] = dataclasses.field(default_factory=list)


class TaskPool:
    """Wasm tasks on `workers` processes (default: one per core), finished ones kept in `history`.

    `store_root` is the module store every worker uses (default: berth's data folder); `history`
    defaults to `tasks.sqlite` there. `session_for(host)` reaches the host whose Docker a
    `wasi/wasm` image is taken from (default: `local` with the default socket only). At most
    `queue_limit` tasks wait.
    """

    def __init__(
        self,
        store_root: Path | None = None,
        history: TaskHistory | None = None,
        workers: int | None = None,
        queue_limit: int = 1000,
        session_for: SessionFor | None = None,
        output_keep: int = OUTPUT_KEEP,
    ) -> None:
        self.store_root = store_root
        self.history = history if history is not None else TaskHistory()
        self.size = max(1, workers or os.cpu_count() or 1)
        self.queue_limit = queue_limit
        self.output_keep = output_keep
        self._session_for = session_for
        self._records: dict[str, TaskRecord] = {}  # oldest first: tasks() reverses it
        self._live: dict[str, _Live] = {}
        hooks = FleetHooks(self._spec_for, self._output, self._finish, self._lost, started=self._started)
        self._fleet = WorkerFleet(hooks, self.size, store_root)
        self._listeners: list[Callable[[TaskRecord], None]] = []
        self._unsaved: dict[str, tuple[TaskRecord, list[LogLine]]] = {}
        self._saving: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # Life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the history and start the worker processes (they get ready in the background)."""
        self._loop = asyncio.get_running_loop()
        for record in reversed(await self.history.list()):
            self._records.setdefault(record.id, record)
        self._fleet.start()

    async def ready(self, timeout: float = 30.0) -> None:
        """Wait until every worker process has started (tasks queue meanwhile; benches wait)."""
        if not await self._fleet.ready(timeout):
            raise BerthError(
                f"The task pool's workers did not start within {timeout:g} s.",
                f"See {paths.error_log()} for why.",
            )

    async def close(self) -> None:
        """Cancel what is still queued or running, write history, stop the workers."""
        if self._closed:
            return
        self._closed = True
        for task_id in list(self._live):
            self._finish(task_id, TaskResult("cancelled", message="cancelled: the pool was closed"))
        await self._fleet.stop()
        if self._saving is not None:
            await self._saving
        await self._flush()
        await self.history.close()

    # Asking -----------------------------------------------------------------------------------

    def tasks(self) -> list[TaskRecord]:
        """Every task, queued, running and finished (history too), newest first."""
        return list(reversed(self._records.values()))

    def get(self, task_id: str) -> TaskRecord:
        """One task by id; NotFound when there is none."""
        record = self._records.get(task_id)
        if record is None:
            raise NotFound(f"No task {task_id}.", "List tasks with `berth wasm tasks`.")
        return record

    def subscribe(self, listener: Callable[[TaskRecord], None]) -> Callable[[], None]:
        """Call `listener(record)` on the event loop at every state change (and when a task is
        dropped: its `dropped` is then True); returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def output(self, task_id: str) -> AsyncIterator[list[LogLine]]:
        """The task's output in batches: what it printed so far, then live until it ends, then a
        "system" line with how it ended. For a finished task, the tail history kept."""
        record = self.get(task_id)
        live = self._live.get(task_id)
        if live is None:
            lines = await self.history.output(task_id) if record.finished else []
            if lines:
                yield lines
        else:
            watcher: asyncio.Queue[list[LogLine] | None] = asyncio.Queue()
            live.watchers.append(watcher)
            try:
                if live.lines:
                    yield list(live.lines)
                while (batch := await watcher.get()) is not None:
                    while not watcher.empty():
                        more = watcher.get_nowait()
                        if more is None:
                            watcher.put_nowait(None)
                            break
                        batch.extend(more)
                    yield batch
            finally:
                with contextlib.suppress(ValueError):
                    live.watchers.remove(watcher)
        if record.result is not None:
            yield [LogLine(describe(record.result), "system")]

    async def wait(self, task_id: str) -> TaskRecord:
        """Wait until the task has finished; returns its record."""
        record = self.get(task_id)
        live = self._live.get(task_id)
        if live is None:
            return record
        return await asyncio.shield(live.done)

    # Acting -----------------------------------------------------------------------------------

    async def submit(self, spec: TaskSpec) -> TaskRecord:
        """Queue a task; Conflict when the queue is full. An image is taken from its host's Docker
        first (Invalid when it has no .wasm entrypoint)."""
        if self._loop is None or self._closed:
            raise BerthError("The task pool is not running.", "Start it before submitting tasks.")
        if self._fleet.broken:
            raise BerthError(self._fleet.broken.capitalize() + ".", "Fix that, then restart berth.")
        self._check_room()
        run_spec, cleanup = spec, None
        if spec.image:
            run_spec, cleanup = await self._resolve_image(spec)
            try:
                self._check_room()
            except Conflict:
                cleanup()
                raise
        task_id = self._new_id()
        record = TaskRecord(
            id=task_id,
            name=spec.name or module_label(spec),
            spec=spec,
            state="queued",
            result=None,
            created_at=time.time(),
        )
        self._records[task_id] = record
        self._live[task_id] = _Live(run_spec, cleanup, self._loop.create_future())
        self._fleet.run(task_id)
        self._notify(record)
        return record

    async def cancel(self, task_id: str) -> None:
        """Cancel a task: a queued one never runs, a running one is stopped (kind "cancelled")."""
        record = self.get(task_id)
        if task_id in self._live:
            self._fleet.cancel(task_id)
            await self.wait(record.id)

    async def drop(self, task_id: str) -> None:
        """Remove a finished task from the list and from history; Conflict while it runs."""
        record = self.get(task_id)
        if not record.finished:
            raise Conflict(f"Task {task_id} is {record.state}.", "Cancel it first, then drop it.")
        del self._records[task_id]
        if self._unsaved.pop(task_id, None) is None:
            with contextlib.suppress(NotFound):
                await self.history.delete(task_id)
        record.dropped = True
        self._notify(record)

    async def rerun(self, task_id: str) -> TaskRecord:
        """Submit the same spec as an earlier task again, as a new task."""
        return await self.submit(self.get(task_id).spec)

    # Inside -----------------------------------------------------------------------------------

    def _check_room(self) -> None:
        if self._fleet.queued >= self.queue_limit:
            raise Conflict(
                f"The task queue is full: {self._fleet.queued} tasks are waiting.",
                "Wait for some to finish or cancel some, then submit again.",
            )

    def _new_id(self) -> str:
        while (task_id := new_task_id()) in self._records:
            pass
        return task_id

    async def _resolve_image(self, spec: TaskSpec) -> tuple[TaskSpec, Callable[[], None]]:
        from backends.wasm import oci  # the image unpacking (tarfile) loads only when images are used

        assert spec.image is not None
        host = spec.host or "local"
        from backends.docker import DockerBackend

        backend = await DockerBackend.for_session(self._session(host))
        try:
            image = await oci.take_image(backend, spec.image)
        finally:
            await backend.close()
        return image.task_spec(spec), image.cleanup

    def _session(self, host: str) -> HostSession:
        """How to reach `host`: through `session_for`, else only `local` on the default socket."""
        if self._session_for is not None:
            return self._session_for(host)
        if host != "local":
            raise NotFound(
                f"The task pool knows no way to reach Docker on {host}.",
                "Run images from the console or CLI, which reach every host in the inventory.",
            )
        from backends.config import HostConfig
        from backends.hosts import HostSession

        return HostSession(HostConfig("local"))

    def _spec_for(self, task_id: str) -> TaskSpec | None:
        live = self._live.get(task_id)
        return None if live is None else live.run_spec

    def _started(self, task_id: str, at: float) -> None:
        record = self._records.get(task_id)
        if record is not None and record.state == "queued":
            record.state, record.started_at = "running", at
            self._notify(record)

    def _output(self, task_id: str, stream: str, data: bytes) -> None:
        live = self._live.get(task_id)
        if live is None:
            return
        decoder = live.decoders.get(stream)
        if decoder is None:
            decoder = live.decoders[stream] = codecs.getincrementaldecoder("utf-8")("replace")
        text = live.partial.pop(stream, "") + decoder.decode(data)
        *complete, rest = text.split("\n")
        if rest:
            live.partial[stream] = rest
        if complete:
            self._add_lines(live, [LogLine(line.removesuffix("\r"), stream) for line in complete])

    def _add_lines(self, live: _Live, lines: list[LogLine]) -> None:
        live.lines.extend(lines)
        live.kept_bytes += sum(len(line.text) + 1 for line in lines)
        while live.kept_bytes > self.output_keep and len(live.lines) > 1:
            live.kept_bytes -= len(live.lines.popleft().text) + 1
        for watcher in live.watchers:
            watcher.put_nowait(list(lines))

    def _finish(self, task_id: str, result: TaskResult) -> None:
        live = self._live.pop(task_id, None)
        record = self._records.get(task_id)
        if live is None or record is None:
            return
        tail = [LogLine(text, stream) for stream, text in live.partial.items() if text]
        if tail:
            self._add_lines(live, tail)
        record.result, record.state, record.ended_at = result, state_for(result), time.time()
        for watcher in live.watchers:
            watcher.put_nowait(None)
        if live.cleanup is not None:
            live.cleanup()
        self._unsaved[task_id] = (record, list(live.lines))
        self._save_soon()
        live.done.set_result(record)
        self._notify(record)

    def _save_soon(self) -> None:
        if self._saving is None or self._saving.done():
            self._saving = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Write every finished task not yet in history; those ending meanwhile go in the next batch."""
        while self._unsaved:
            batch = list(self._unsaved.values())
            self._unsaved.clear()
            await self.history.add(batch)

    def _lost(self, task_id: str, why: str) -> None:
        """Its worker died running it, or none can start: a failure of the task (kind "trap")."""
        self._finish(task_id, TaskResult("trap", message=why))

    def _notify(self, record: TaskRecord) -> None:
        for listener in list(self._listeners):
            listener(record)

