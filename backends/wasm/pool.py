"""The local task pool: wasm tasks run concurrently in worker processes, with a bounded queue,
cancellation, live output and a history of finished tasks on disk.

Why processes: wasmtime-py holds the GIL for everything but the wasm call itself, so for short
tasks two threads ran slower than one here (20,000 trivial tasks: 4.4 s on one thread, 5.1 s on
two), and only long CPU-bound modules gained from a second thread (2.48 s -> 1.71 s for four,
against 1.57 s with two processes). One worker process per core scales both.

Everything the pool changes happens on the event loop: the workers' pipes are read with
`loop.add_reader`, so listeners and output subscribers are called there too.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends import paths
from backends.errors import BerthError, Conflict, NotFound
from backends.streams import LogLine
from backends.wasm.history import TaskHistory
from backends.wasm.record import TaskRecord, describe, module_label, new_task_id, state_for
from backends.wasm.spec import TaskResult, TaskSpec

if TYPE_CHECKING:
    from backends.docker import DockerBackend

__all__ = ["DockerFor", "TaskPool", "TaskRecord", "join_workers", "spawn_worker"]

DockerFor = Callable[[str], Awaitable["DockerBackend"]]
"""How the pool reaches a host's Docker to take a `wasi/wasm` image from it."""

OUTPUT_KEEP = 128 * 1024
"""Bytes of output lines kept per task: replayed to a new viewer and written to history."""
BATCH = 8
"""Most tasks handed to a worker at once while a backlog waits (one message, one wake-up: the pipe
write and the worker's wake-up were most of the cost of a trivial task). Without a backlog a
worker gets one task at a time, so no task waits behind a long one while another worker idles."""
CANCEL_GRACE = 3.0
"""Seconds a running task has to stop after a cancel before its worker process is killed."""
STOP_GRACE = 2.0
EARLY_DEATHS = 3
"""Workers that may die before getting ready, in a row, before the pool stops starting more."""
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])  # where `backends` imports from


@dataclasses.dataclass(eq=False)
class _Worker:
    """A worker process, its end of the pipe, and the tasks handed to it (oldest first)."""

    process: subprocess.Popen[bytes]
    conn: Connection
    ready: bool = False
    tasks: list[str] = dataclasses.field(default_factory=list)


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
    worker: _Worker | None = None
    cancel_requested: bool = False


class TaskPool:
    """Wasm tasks on `workers` processes (default: one per core), finished ones kept in `history`.

    `store_root` is the module store every worker uses (default: berth's data folder); `history`
    defaults to `tasks.sqlite` there. `docker_for(host)` gives the Docker engine to take a
    `wasi/wasm` image from (default: the local engine only). At most `queue_limit` tasks wait.
    """

    def __init__(
        self,
        store_root: Path | None = None,
        history: TaskHistory | None = None,
        workers: int | None = None,
        queue_limit: int = 1000,
        docker_for: DockerFor | None = None,
        output_keep: int = OUTPUT_KEEP,
    ) -> None:
        self.store_root = store_root
        self.history = history if history is not None else TaskHistory()
        self.size = max(1, workers or os.cpu_count() or 1)
        self.queue_limit = queue_limit
        self.output_keep = output_keep
        self._docker_for = docker_for
        self._records: dict[str, TaskRecord] = {}  # oldest first: tasks() reverses it
        self._live: dict[str, _Live] = {}
        self._queue: deque[str] = deque()
        self._workers: list[_Worker] = []
        self._listeners: list[Callable[[TaskRecord], None]] = []
        self._unsaved: dict[str, tuple[TaskRecord, list[LogLine]]] = {}
        self._saving: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early_deaths = 0
        self._closed = False

    # Life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the history and start the worker processes (they get ready in the background)."""
        self._loop = asyncio.get_running_loop()
        for record in reversed(await self.history.list()):
            self._records.setdefault(record.id, record)
        for _ in range(self.size):
            self._spawn()

    async def ready(self, timeout: float = 30.0) -> None:
        """Wait until every worker process has started (tasks queue meanwhile; benches wait)."""
        deadline = time.monotonic() + timeout
        while not (self._workers and all(w.ready for w in self._workers)):
            if time.monotonic() > deadline or (self._closed or not self._workers):
                raise BerthError(
                    f"The task pool's workers did not start within {timeout:g} s.",
                    f"See {paths.error_log()} for why.",
                )
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Cancel what is still queued or running, write history, stop the workers."""
        if self._closed:
            return
        self._closed = True
        for task_id in list(self._queue):
            self._finish(task_id, TaskResult("cancelled", message="cancelled: the pool was closed"))
        self._queue.clear()
        for task_id in list(self._live):
            self._finish(task_id, TaskResult("cancelled", message="cancelled: the pool was closed"))
        for w in self._workers:
            self._stop_reading(w)
            with contextlib.suppress(OSError):
                w.conn.send(("stop",))
        await asyncio.to_thread(join_workers, [(w.process, w.conn) for w in self._workers])
        self._workers.clear()
        if self._saving is not None:
            await self._saving
        await self._flush()
        await self.history.close()

    def _spawn(self) -> None:
        process, conn = spawn_worker(self.store_root)
        w = _Worker(process, conn)
        self._workers.append(w)
        assert self._loop is not None
        self._loop.add_reader(w.conn.fileno(), self._on_readable, w)

    def _stop_reading(self, w: _Worker) -> None:
        if self._loop is not None:
            with contextlib.suppress(OSError, ValueError):
                self._loop.remove_reader(w.conn.fileno())

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
        if not self._workers:
            raise BerthError(self._broken_message(None).capitalize() + ".", "Fix that, then restart berth.")
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
        self._queue.append(task_id)
        self._notify(record)
        self._dispatch()
        return record

    async def cancel(self, task_id: str) -> None:
        """Cancel a task: a queued one never runs, a running one is stopped (kind "cancelled")."""
        record = self.get(task_id)
        live = self._live.get(task_id)
        if live is None:
            return
        if task_id in self._queue:
            self._queue.remove(task_id)
            self._finish(task_id, TaskResult("cancelled", message="cancelled before it started"))
            return
        live.cancel_requested = True
        w = live.worker
        if w is not None:
            with contextlib.suppress(OSError):
                w.conn.send(("cancel", task_id))
            assert self._loop is not None
            self._loop.call_later(CANCEL_GRACE, self._enforce_cancel, task_id, w)
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
        if len(self._queue) >= self.queue_limit:
            raise Conflict(
                f"The task queue is full: {len(self._queue)} tasks are waiting.",
                "Wait for some to finish or cancel some, then submit again.",
            )

    def _new_id(self) -> str:
        while (task_id := new_task_id()) in self._records:
            pass
        return task_id

    async def _resolve_image(self, spec: TaskSpec) -> tuple[TaskSpec, Callable[[], None]]:
        from backends.wasm import oci  # aiohttp and tarfile work load only when images are used

        assert spec.image is not None
        host = spec.host or "local"
        backend, owned = await self._docker(host)
        try:
            image = await oci.take_image(backend, spec.image)
        finally:
            if owned:
                await backend.close()
        return image.task_spec(spec), image.cleanup

    async def _docker(self, host: str) -> tuple[DockerBackend, bool]:
        """The Docker engine of `host`, and whether the pool made it (and must close it)."""
        if self._docker_for is not None:
            return await self._docker_for(host), False
        if host != "local":
            raise NotFound(
                f"The task pool knows no way to reach Docker on {host}.",
                "Run images from the console or CLI, which reach every host in the inventory.",
            )
        from backends.config import HostConfig
        from backends.docker import DockerBackend
        from backends.hosts import HostSession

        return await DockerBackend.for_session(HostSession(HostConfig("local"))), True

    def _dispatch(self) -> None:
        for w in list(self._workers):
            if not self._queue:
                return
            # At most half a fair share of what waits: batches shrink as the queue drains, so
            # the last tasks spread over all workers instead of waiting in one.
            share = max(1, min(BATCH, len(self._queue) // (2 * len(self._workers))))
            room = share - len(w.tasks)
            if not w.ready or room <= 0:
                continue
            batch = []
            for _ in range(min(room, len(self._queue))):
                task_id = self._queue.popleft()
                live = self._live[task_id]
                live.worker = w
                w.tasks.append(task_id)
                batch.append((task_id, live.run_spec))
            try:
                w.conn.send(("run", batch))
            except OSError:
                self._worker_died(w)

    def _on_readable(self, w: _Worker) -> None:
        try:
            while w.conn.poll():
                self._handle(w, w.conn.recv())
        except (EOFError, OSError):
            self._worker_died(w)
            return
        self._dispatch()

    def _handle(self, w: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "out":
            self._output(message[1], message[2], message[3])
        elif kind == "started":
            record = self._records.get(message[1])
            if record is not None and record.state == "queued":
                record.state, record.started_at = "running", message[2]
                self._notify(record)
        elif kind == "done":
            with contextlib.suppress(ValueError):
                w.tasks.remove(message[1])
            self._finish(message[1], message[2])
        elif kind == "ready":
            w.ready = True

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

    def _enforce_cancel(self, task_id: str, w: _Worker) -> None:
        """A running task that ignored its cancel: kill its worker (the others it held go back)."""
        if task_id in self._live and task_id in w.tasks and w.process.poll() is None:
            w.process.kill()

    def _worker_died(self, w: _Worker) -> None:
        self._stop_reading(w)
        with contextlib.suppress(ValueError):
            self._workers.remove(w)
        try:
            code = w.process.wait(0.5)
        except subprocess.TimeoutExpired:
            w.process.kill()
            code = w.process.wait()
        w.conn.close()
        requeue = []
        for task_id in w.tasks:
            live, record = self._live.get(task_id), self._records.get(task_id)
            if live is None or record is None:
                continue
            if live.cancel_requested:
                self._finish(task_id, TaskResult("cancelled", message="cancelled: its worker was stopped"))
            elif record.state == "running":
                self._finish(
                    task_id,
                    TaskResult(
                        "trap",
                        message=f"the worker process running it died (exit code {code})",
                    ),
                )
            else:
                live.worker = None
                requeue.append(task_id)
        self._queue.extendleft(reversed(requeue))
        self._early_deaths = 0 if w.ready else self._early_deaths + 1
        if self._closed:
            return
        if self._early_deaths < EARLY_DEATHS:
            self._spawn()
            self._dispatch()
        elif not self._workers:
            for task_id in list(self._queue):
                self._finish(task_id, TaskResult("trap", message=self._broken_message(code)))
            self._queue.clear()

    def _broken_message(self, code: int | None) -> str:
        return (
            f"the pool's worker processes exit as they start (exit code {code}); "
            f"their errors are in {paths.error_log()}"
        )

    def _notify(self, record: TaskRecord) -> None:
        for listener in list(self._listeners):
            listener(record)


def spawn_worker(store_root: Path | None) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start a worker process (`python -m backends.wasm.worker`) and return it with our end of
    its socket pair; it loads modules from the store at `store_root` (default: berth's own).

    Not `multiprocessing.Process`: its "spawn" start re-runs the parent's main module in the
    child (the whole console, or a script without a `__main__` guard starting workers of its
    own), and "fork" would copy the console's threads and event loop. The socket pair is
    wrapped in multiprocessing's `Connection` for its message framing.
    """
    ours, theirs = socket.socketpair()
    with theirs:
        log = paths.error_log()
        paths.private_dir(log.parent)
        with os.fdopen(paths.open_private(log), "ab") as stderr:  # the child's copy outlives this block
            process = subprocess.Popen(
                [sys.executable, "-m", "backends.wasm.worker", str(theirs.fileno()), str(store_root or "")],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,  # a traceback must never land on the screen
                env=_worker_env(),
            )
    return process, Connection(ours.detach())


def join_workers(
    workers: list[tuple[subprocess.Popen[bytes], Connection]], grace: float = STOP_GRACE
) -> None:
    """Wait up to `grace` seconds (in all) for worker processes told to stop, kill the ones
    still running, close their connections. Blocking: the pool calls it in a thread."""
    deadline = time.monotonic() + grace
    for process, conn in workers:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        conn.close()


def _worker_env() -> dict[str, str]:
    """The parent's environment, with `backends` importable however berth was started."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": _SOURCE_ROOT + (os.pathsep + path if path else "")}
