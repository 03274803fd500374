"""What runs inside one of the fleet's worker processes (fleet.py, for the local pool and a
provider alike): tasks, one at a time, with live output.

Started as `python -m backends.wasm.worker FD [STORE_ROOT]`, FD being its end of a socket pair.

Each worker holds its own `ModuleStore` (and so its own wasmtime engine and loaded modules): a
module compiled once stays loaded there for every later task. The parent talks over one duplex
pipe. Parent -> worker: ("run", [(id, spec), ...]), ("cancel", id), ("stop",). Worker -> parent:
("ready", pid), ("started", id, time), ("out", id, stream, bytes), ("done", id, result).

A control thread reads the pipe while the main thread runs the task, so a cancel reaches the
running task through the `threading.Event` the runtime watches.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from backends.errors import BerthError
from backends.wasm.spec import TaskResult, TaskSpec


def serve(conn: Connection, store_root: str | None) -> None:
    """The worker process's main function: run the tasks the parent sends until told to stop."""
    # Imported here so the parent process never loads wasmtime just to start workers.
    from backends.wasm.runtime import run_task
    from backends.wasm.store import ModuleStore

    store = ModuleStore(Path(store_root) if store_root else None)
    jobs: queue.Queue[tuple[str, TaskSpec] | None] = queue.Queue()
    send_lock = threading.Lock()
    state_lock = threading.Lock()
    cancels: dict[str, threading.Event] = {}  # every task received and not yet finished

    def send(message: tuple[object, ...]) -> None:
        # The runtime may report output from its own threads while the main thread reports the end.
        with send_lock:
            conn.send(message)

    def output_to(task_id: str) -> Callable[[str, bytes], None]:
        return lambda stream, data: send(("out", task_id, stream, data))

    def control() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the parent is gone: finish nothing more
            except Exception:  # a message that cannot be read (no memory for it): the pipe is
                break  # out of step, so end as if the parent were gone; the parent sees us exit
            if message[0] == "run":
                for task_id, spec in message[1]:
                    with state_lock:
                        cancels[task_id] = threading.Event()
                    jobs.put((task_id, spec))
            elif message[0] == "cancel":
                with state_lock:
                    event = cancels.get(message[1])
                if event is not None:
                    event.set()
            elif message[0] == "stop":
                break
        with state_lock:
            for event in cancels.values():
                event.set()
        jobs.put(None)

    threading.Thread(target=control, name="berth-worker-control", daemon=True).start()
    send(("ready", os.getpid()))
    while (job := jobs.get()) is not None:
        task_id, spec = job
        with state_lock:
            cancel = cancels[task_id]
        if cancel.is_set():
            result = TaskResult("cancelled", message="cancelled before it started")
        else:
            send(("started", task_id, time.time()))
            try:
                result = run_task(spec, store, on_output=output_to(task_id), cancel=cancel)
            except BerthError as exc:  # a module file or preopened dir that is not there
                result = TaskResult("invalid_module", message=str(exc))
            except Exception as exc:  # the worker must outlive any one task's failure
                result = TaskResult("trap", message=f"the task failed inside berth: {exc!r}")
        with state_lock:
            cancels.pop(task_id, None)
        send(("done", task_id, result))
    conn.close()


def main(argv: list[str]) -> None:
    """Serve the fleet on the socket whose fd is `argv[0]`, with the module store at `argv[1]`."""
    serve(Connection(int(argv[0])), argv[1] if len(argv) > 1 and argv[1] else None)


if __name__ == "__main__":
    main(sys.argv[1:])
