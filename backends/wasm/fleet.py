"""The worker fleet: wasm worker processes (backends/wasm/worker.py) and the tasks handed to them,
for the local pool (pool.py) and a provider (backends/broker/provider.py) alike.

The fleet spawns its workers, hands them queued tasks in batches, reads what they report, stops a
task on cancel (killing its worker when it ignores that), starts a new worker in place of one that
died, and stops them all without blocking the event loop. Its user keeps its own policy (the
pool's bounded queue and history, the provider's reports to its broker) and hears back through
`FleetHooks`, always on the event loop: each worker's pipe is read with `loop.add_reader`.

When a worker dies, the task it was running is lost (`FleetHooks.lost`, with the exit code); the
tasks it held that had not started go back to the front of the queue for another worker, up to
`HANDOVERS` times each, so a task that kills every worker it reaches cannot go round for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from backends import paths
from backends.wasm.spec import TaskResult, TaskSpec

BATCH = 8
"""Most tasks a worker holds while a backlog waits (one pipe message, one wake-up for several short
tasks: the pipe write and the worker's wake-up were most of the cost of a trivial task)."""
CANCEL_GRACE = 3.0
"""Seconds a running task has to stop after a cancel before its worker process is killed."""
STOP_GRACE = 2.0
"""Seconds, in all, that workers told to stop have to exit before they are killed."""
EARLY_DEATHS = 3
"""Workers that may die before getting ready, in a row, before the fleet stops starting more."""
HANDOVERS = 3
"""Workers a task may be handed to that die before starting it; then it is lost."""
RESPAWN_DELAY = 1.0
"""Seconds before trying again to start a worker process that could not be started."""
REAP_GRACE = 0.5
"""Seconds a worker whose pipe closed has to exit before it is killed (to learn its exit code)."""
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])  # where `backends` imports from


@dataclasses.dataclass(frozen=True)
class FleetHooks:
    """How the fleet tells its user about the tasks it runs (every call on the event loop)."""

    spec_for: Callable[[str], TaskSpec | None]
    """The spec to run, asked once, when the task is first handed to a worker (a provider makes the
    task's folder only then); None when it cannot be made: the user has ended the task itself."""
    output: Callable[[str, str, bytes], None]
    """Bytes the task wrote to "stdout" or "stderr"."""
    ended: Callable[[str, TaskResult], None]
    """The task ended: its result (a cancelled one's too, started or not)."""
    lost: Callable[[str, str], None]
    """The task will not end by itself: the worker process running it died, or no worker can be
    started; the sentence says which."""
    started: Callable[[str, float], None] = lambda task_id, at: None
    """A worker began running the task, at this wall-clock time."""
    settled: Callable[[], None] = lambda: None
    """The fleet has read and handed out all it could for now: a good time to send reports."""


@dataclasses.dataclass(eq=False)
class _Worker:
    """A worker process, its end of the pipe, and the tasks handed to it (oldest first)."""

    process: subprocess.Popen[bytes]
    conn: Connection
    ready: bool = False
    dead: bool = False
    tasks: list[_Task] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(eq=False)
class _Task:
    """A task the fleet holds: queued, on a worker, or on a dead worker until its loss is told."""

    id: str
    spec: TaskSpec | None = None
    worker: _Worker | None = None
    started: bool = False
    cancelled: bool = False
    """Its user asked to cancel it while a worker held it."""
    handovers: int = 0
    grace: asyncio.TimerHandle | None = None


class WorkerFleet:
    """`size` worker processes using the module store at `store_root` (default: berth's own).

    Each worker holds up to half its fair share of the tasks waiting, at most `BATCH` (batches
    shrink as the queue drains, so the last tasks spread over every worker instead of waiting in
    one), and at least `prefetch`: the pool's 1 means no task waits behind a long one while
    another worker idles; a provider's 2 keeps the next task ready behind the running one, as its
    broker hands it two per worker. `log` gets a line when a worker dies or cannot be started.
    """

    def __init__(
        self,
        hooks: FleetHooks,
        size: int,
        store_root: Path | None = None,
        prefetch: int = 1,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.size = max(1, size)
        self.store_root = store_root
        self.prefetch = max(1, min(prefetch, BATCH))
        self._hooks = hooks
        self._log = log or (lambda line: None)
        self._workers: list[_Worker] = []
        self._tasks: dict[str, _Task] = {}
        self._queue: deque[_Task] = deque()
        self._burials: set[asyncio.Task[None]] = set()
        self._dispatching: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early_deaths = 0
        self._broken: str | None = None
        self._stopping = False

    # Life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker processes (they get ready in the background; tasks queue meanwhile).
        OSError when one cannot be started."""
        self._loop = asyncio.get_running_loop()
        for _ in range(self.size):
            self._spawn()
        self._dispatch_soon()  # what was queued before

    async def ready(self, timeout: float = 30.0) -> bool:
        """Wait until every worker has started; False if they did not within `timeout` seconds
        (or cannot start at all)."""
        deadline = time.monotonic() + timeout
        while not (self._workers and all(w.ready for w in self._workers)):
            if time.monotonic() > deadline or self._broken or self._stopping:
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self) -> None:
        """Stop every worker: each is told to, then given `STOP_GRACE` seconds in all before it is
        killed, waited for in a thread. Tasks still held are dropped untold: the user ends them as
        its policy says."""
        self._stopping = True
        if self._dispatching is not None:
            self._dispatching.cancel()
        for task in self._tasks.values():
            if task.grace is not None:
                task.grace.cancel()
        self._tasks.clear()
        self._queue.clear()
        workers, self._workers = self._workers, []
        for w in workers:
            self._stop_reading(w)
            with contextlib.suppress(OSError):
                w.conn.send(("stop",))
        await asyncio.to_thread(join_workers, [(w.process, w.conn) for w in workers])
        if self._burials:
            await asyncio.gather(*self._burials)

    # Asking -----------------------------------------------------------------------------------

    @property
    def broken(self) -> str | None:
        """Why no task can run here (every worker exits as it starts), or None."""
        return self._broken

    @property
    def queued(self) -> int:
        """Tasks waiting for a worker."""
        return len(self._queue)

    @property
    def busy(self) -> int:
        """Workers holding a task."""
        return sum(1 for w in self._workers if w.tasks)

    @property
    def pending(self) -> int:
        """Tasks the fleet holds: queued, on a worker, or lost with their loss not yet told."""
        return len(self._tasks)

    def unstarted(self) -> list[str]:
        """The tasks held that have not begun: queued, or waiting in a worker behind another."""
        return [t.id for t in self._tasks.values() if not t.started and not t.cancelled]

    # Acting -----------------------------------------------------------------------------------

    def run(self, task_id: str) -> None:
        """Queue a task; it is handed to a worker at the end of this turn of the event loop, with
        the others queued in it, its spec asked of `FleetHooks.spec_for` then."""
        if task_id in self._tasks:
            raise ValueError(f"task {task_id} is already in the fleet")
        task = self._tasks[task_id] = _Task(task_id)
        self._queue.append(task)
        self._dispatch_soon()

    def cancel(self, task_id: str) -> bool:
        """Cancel a task: a queued one ends at once ("cancelled before it started"), one on a worker
        is stopped there (and its worker killed if it still runs `CANCEL_GRACE` seconds later).
        False when the fleet does not hold it."""
        task = self._tasks.get(task_id)
        if task is None:
            return False
        if task.worker is None:
            self._queue.remove(task)
            del self._tasks[task_id]
            self._hooks.ended(task_id, TaskResult("cancelled", message="cancelled before it started"))
            return True
        task.cancelled = True
        if not task.worker.dead:
            with contextlib.suppress(OSError):
                task.worker.conn.send(("cancel", task_id))
            self._arm_grace(task)
        return True

    # Inside -----------------------------------------------------------------------------------

    def _spawn(self) -> None:
        process, conn = spawn_worker(self.store_root)
        w = _Worker(process, conn)
        self._workers.append(w)
        assert self._loop is not None
        self._loop.add_reader(conn.fileno(), self._on_readable, w)

    def _stop_reading(self, w: _Worker) -> None:
        if self._loop is not None:
            with contextlib.suppress(OSError, ValueError):
                self._loop.remove_reader(w.conn.fileno())

    def _dispatch_soon(self) -> None:
        """Dispatch at the end of this turn of the event loop (once, however many ask)."""
        if self._dispatching is None and self._loop is not None and not self._stopping:
            self._dispatching = self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        """Hand queued tasks out, each to the worker holding fewest, in one pipe message per worker;
        then tell the user the fleet has settled."""
        if self._dispatching is not None:  # this turn's dispatch is this one
            self._dispatching.cancel()
            self._dispatching = None
        if self._broken is not None:
            while self._queue:
                task = self._queue.popleft()
                del self._tasks[task.id]
                self._hooks.lost(task.id, self._broken)
        # Workers still starting count too: a task handed to one waits for its start (a fraction
        # of a second), where on a busy one it could wait behind a long task.
        workers = self._workers
        if self._queue and workers:
            depth = max(self.prefetch, min(BATCH, len(self._queue) // (2 * len(workers))))
            batches: dict[_Worker, list[tuple[str, TaskSpec]]] = {}
            while self._queue:
                w = min(workers, key=lambda w: len(w.tasks))
                if len(w.tasks) >= depth:
                    break
                task = self._queue.popleft()
                if task.spec is None:
                    task.spec = self._hooks.spec_for(task.id)
                    if task.spec is None:
                        del self._tasks[task.id]
                        continue
                task.worker = w
                task.handovers += 1
                w.tasks.append(task)
                batches.setdefault(w, []).append((task.id, task.spec))
            for w, batch in batches.items():
                try:
                    w.conn.send(("run", batch))
                except OSError:
                    self._died(w)
        self._hooks.settled()

    def _on_readable(self, w: _Worker) -> None:
        while not w.dead:
            # Only the pipe's own errors mean the worker is gone; what a message leads to is the
            # user's (an error there is not taken for a dead worker).
            try:
                if not w.conn.poll():
                    break
                message = w.conn.recv()
            except (EOFError, OSError):
                self._died(w)
                break
            self._handle(w, message)
        self._dispatch()

    def _handle(self, w: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "out":
            self._hooks.output(message[1], message[2], message[3])
        elif kind == "started":
            task = self._tasks.get(message[1])
            if task is not None:
                task.started = True
                if task.cancelled:  # the cancel crossed the start on the way
                    self._arm_grace(task)
                self._hooks.started(task.id, message[2])
        elif kind == "done":
            task = self._tasks.pop(message[1], None)
            if task is not None:
                with contextlib.suppress(ValueError):
                    w.tasks.remove(task)
                if task.grace is not None:
                    task.grace.cancel()
                self._hooks.ended(task.id, message[2])
        elif kind == "ready":
            w.ready = True

    def _arm_grace(self, task: _Task) -> None:
        """Kill the worker of a cancelled task still running `CANCEL_GRACE` seconds from now. Not
        before it starts: it may wait behind another task, and the worker skips it when it comes."""
        if task.started and task.grace is None and self._loop is not None:
            task.grace = self._loop.call_later(CANCEL_GRACE, self._enforce_cancel, task)

    def _enforce_cancel(self, task: _Task) -> None:
        w = task.worker
        if self._tasks.get(task.id) is task and w is not None and not w.dead and w.process.poll() is None:
            w.process.kill()  # its pipe closes: _died hands the others it held to other workers

    def _died(self, w: _Worker) -> None:
        """A worker's pipe closed: start another in its place, requeue what it had not started,
        and tell the loss of the rest once its exit code is known."""
        if w.dead:
            return
        w.dead = True
        self._stop_reading(w)
        with contextlib.suppress(ValueError):
            self._workers.remove(w)
        w.conn.close()
        again = [t for t in w.tasks if not t.started and not t.cancelled and t.handovers < HANDOVERS]
        gone = [t for t in w.tasks if t not in again]
        w.tasks = []
        for task in again:
            task.worker = None
        self._queue.extendleft(reversed(again))
        self._early_deaths = 0 if w.ready else self._early_deaths + 1
        if not self._stopping and self._early_deaths < EARLY_DEATHS:
            self._respawn()
        code = w.process.poll()
        if code is not None:
            self._bury(w, gone, code)
        else:  # its pipe closes a moment before it exits: wait for its exit code off the loop
            assert self._loop is not None
            burial = self._loop.create_task(self._reap(w, gone))
            self._burials.add(burial)
            burial.add_done_callback(self._burials.discard)

    async def _reap(self, w: _Worker, gone: list[_Task]) -> None:
        code = await asyncio.to_thread(_wait_or_kill, w.process, REAP_GRACE)
        self._bury(w, gone, code)
        self._dispatch_soon()

    def _bury(self, w: _Worker, gone: list[_Task], code: int) -> None:
        """Say how a dead worker ended, and end the tasks it held that no other worker will run."""
        if self._stopping:
            return
        if self._early_deaths < EARLY_DEATHS:
            self._log(f"a worker process died (exit code {code}); starting another")
        elif not self._workers and self._broken is None:
            self._broken = (
                f"the wasm worker processes exit as they start (exit code {code}); "
                f"their errors are in {paths.error_log()}"
            )
            self._log(self._broken)
            self._dispatch_soon()  # which ends the queued tasks: none can run
        for task in gone:
            del self._tasks[task.id]
            if task.grace is not None:
                task.grace.cancel()
            if task.cancelled:
                why = "cancelled: its worker was stopped" if task.started else "cancelled before it started"
                self._hooks.ended(task.id, TaskResult("cancelled", message=why))
            elif task.started:
                self._hooks.lost(task.id, f"the worker process running it died (exit code {code})")
            else:
                self._hooks.lost(
                    task.id,
                    f"{task.handovers} worker processes died before running it (the last: exit code {code})",
                )

    def _respawn(self) -> None:
        """Start a worker in place of one that died; if that fails, try again a little later."""
        if self._stopping or len(self._workers) >= self.size:
            return
        try:
            self._spawn()
        except OSError as exc:
            self._log(
                f"cannot start a worker process: {exc.strerror or exc}; trying again in {RESPAWN_DELAY:g} s"
            )
            assert self._loop is not None
            self._loop.call_later(RESPAWN_DELAY, self._respawn)


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
    still running, close their connections. Blocking: the fleet calls it in a thread."""
    deadline = time.monotonic() + grace
    for process, conn in workers:
        _wait_or_kill(process, max(0.0, deadline - time.monotonic()))
        conn.close()


def _wait_or_kill(process: subprocess.Popen[bytes], grace: float) -> int:
    """The process's exit code, after killing it if it has not exited within `grace` seconds."""
    try:
        return process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _worker_env() -> dict[str, str]:
    """The parent's environment, with `backends` importable however berth was started."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": _SOURCE_ROOT + (os.pathsep + path if path else "")}
