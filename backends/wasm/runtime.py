"""Running one WASI preview 1 task with wasmtime, under limits, its output streamed as it comes.

`run_task` runs in the calling thread and is built to be called thousands of times a second: the
module comes compiled and pre-linked from the `ModuleStore`, output reaches `on_output` from
wasmtime's own write calls (no pipes, no reader threads of ours), and no thread is started per
task. wasmtime makes those calls on one of its worker threads while the module waits for them.

Wall time, cancellation and the output limit share one mechanism: each engine has one ticker
thread that advances its epoch every `TICK` seconds while some task needs watching. Every store's
epoch deadline is one tick after the current epoch, so a tick calls back into the store that is
running, which either stops it (cancelled, timed out, too much output) or sets the next deadline
one tick on. A tick is therefore harmless to every other task on the same engine, whatever it was
started with.
"""

from __future__ import annotations

import errno
import functools
import itertools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

from backends import private_api  # wasmtime's C API: stdin bytes, the deadline callback, outputs
from backends.errors import NotFound
from backends.wasm.spec import TaskResult, TaskSpec
from backends.wasm.store import InvalidModule, ModuleStore

TICK = 0.01
"""Seconds between epoch ticks: how late a timeout or a cancellation may take effect."""

UNLIMITED_FUEL = 2**63 - 1
"""The fuel a task without a fuel limit starts with (fuel is on in the engine for all tasks)."""

OutputCallback = Callable[[str, bytes], None]
"""Receives ("stdout" | "stderr", bytes) as the module writes them."""

_PAGE = 65536


class _Ticker:
    """Advances one engine's epoch every TICK while any task holds it, and sleeps otherwise."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._users = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Start ticking (if not already) until the matching `release`."""
        with self._wake:
            self._users += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="berth-wasm-epoch", daemon=True)
                self._thread.start()
            self._wake.notify()

    def release(self) -> None:
        """This holder no longer needs ticks."""
        with self._wake:
            self._users -= 1

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._users == 0:
                    self._wake.wait()
            time.sleep(TICK)
            self._engine.increment_epoch()


_tickers: dict[int, _Ticker] = {}
_tickers_lock = threading.Lock()
# A forked worker (the pool's processes) has none of its parent's threads: start afresh.
os.register_at_fork(after_in_child=_tickers.clear)


def _ticker(engine: wasmtime.Engine) -> _Ticker:
    with _tickers_lock:
        ticker = _tickers.get(id(engine))  # shared engines live as long as the process
        if ticker is None:
            ticker = _tickers[id(engine)] = _Ticker(engine)
        return ticker


class _Run:
    """One running task's output accounting and the reason berth stopped it, if it did."""

    def __init__(
        self,
        spec: TaskSpec,
        ticker: _Ticker,
        on_output: OutputCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        self.ticker = ticker
        self.on_output = on_output
        self.cancel = cancel
        limits = spec.limits
        self.max_output = limits.max_output
        self.deadline = time.monotonic() + limits.timeout if limits.timeout is not None else None
        self.counts = {"stdout": 0, "stderr": 0}
        self.captured: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        self.stop: str | None = None
        self.error: BaseException | None = None
        self.ticking = False

    def start_ticking(self) -> None:
        """Have the epoch advance so this task's deadline callback runs."""
        if not self.ticking:
            self.ticking = True
            self.ticker.acquire()

    def finish(self) -> None:
        """Stop holding the ticker."""
        if self.ticking:
            self.ticking = False
            self.ticker.release()

    def stopping(self, reason: str) -> None:
        """Stop the task at the next tick, for `reason` (a result kind)."""
        if self.stop is None:
            self.stop = reason
        self.start_ticking()

    def expired(self) -> bool:
        """Called at every tick: whether the task must stop now."""
        if self.stop is None:
            if self.cancel is not None and self.cancel.is_set():
                self.stop = "cancelled"
            elif self.deadline is not None and time.monotonic() >= self.deadline:
                self.stop = "timeout"
        return self.stop is not None

    def write(self, stream: str, chunk: bytes) -> int | None:
        """One write by the module: counted, capped at max_output, passed on or kept."""
        if self.stop is not None:
            return -errno.EIO
        written = self.counts["stdout"] + self.counts["stderr"]
        if self.max_output is not None and written + len(chunk) > self.max_output:
            chunk = chunk[: self.max_output - written]
            self.stopping("output_limit")
        self.counts[stream] += len(chunk)
        if self.on_output is None:
            self.captured[stream].append(chunk)
        elif chunk:
            try:
                self.on_output(stream, chunk)
            except Exception as exc:  # raised again by run_task once the module has stopped
                self.error = exc
                self.stopping("cancelled")
        return None if self.stop is None else -errno.EIO


_runs: dict[int, _Run] = {}
_run_ids = itertools.count(1)  # 0 would reach the callback as a NULL pointer

def _expired(run_id: int) -> bool:
    """The epoch reached a store's deadline: whether its task must stop (else one tick more)."""
    run = _runs.get(run_id)
    return run is not None and run.expired()


def _write(stream: str, run_id: int, chunk: bytes) -> int:
    """A module wrote `chunk` to `stream`; `run_id` is its run's. The bytes taken, or -errno."""
    run = _runs.get(run_id)
    if run is None:
        return len(chunk)
    result = run.write(stream, chunk)
    return len(chunk) if result is None else result


# Called by wasmtime for every store and module: they live as long as the process.
_on_deadline = private_api.epoch_deadline_callback(_expired)
_on_stdout = private_api.output_callback(functools.partial(_write, "stdout"))
_on_stderr = private_api.output_callback(functools.partial(_write, "stderr"))


def run_task(
    spec: TaskSpec,
    store: ModuleStore,
    on_output: OutputCallback | None = None,
    cancel: threading.Event | None = None,
) -> TaskResult:
    """Run `spec` to its end in this thread and say how it ended.

    Output goes to `on_output(stream, chunk)` as the module writes it (called on a wasmtime worker
    thread, one call at a time); without `on_output` it is kept in the result's `stdout`/`stderr`.
    Setting `cancel` stops the task within a tick. Raises NotFound for a module file, stored ref or
    preopened directory that does not exist, and whatever `on_output` raised (after stopping the
    task).
    """
    started = time.perf_counter()
    try:
        loaded = store.load(spec.module)
    except InvalidModule as exc:
        return TaskResult("invalid_module", message=exc.message, duration_ms=_ms(started))
    if loaded.pre is None:
        return TaskResult(
            "missing_import",
            message=f"missing import {loaded.missing} (berth runs WASI preview 1 modules)",
            duration_ms=_ms(started),
        )
    if cancel is not None and cancel.is_set():
        return TaskResult("cancelled", message="cancelled before it started", duration_ms=_ms(started))

    limits = spec.limits
    fuel = limits.fuel if limits.fuel is not None else UNLIMITED_FUEL
    run = _Run(spec, _ticker(store.engine), on_output, cancel)
    run_id = next(_run_ids)
    wstore = wasmtime.Store(store.engine)
    wstore.set_wasi(_wasi_config(spec, run_id))
    wstore.set_fuel(fuel)
    if limits.memory is not None:
        wstore.set_limits(memory_size=limits.memory)
    _runs[run_id] = run
    private_api.set_epoch_deadline_callback(wstore, _on_deadline, run_id)
    wstore.set_epoch_deadline(1)
    if run.deadline is not None or cancel is not None:
        run.start_ticking()

    exit_code: int | None = None
    failure: Exception | None = None
    instance: wasmtime.Instance | None = None
    try:
        instance = loaded.pre.instantiate(wstore)
        entry = instance.exports(wstore).get("_start")
        if not isinstance(entry, wasmtime.Func):
            return TaskResult(
                "invalid_module",
                message="not a WASI command: the module exports no _start function",
                duration_ms=_ms(started),
            )
        entry(wstore)
        exit_code = 0
    except wasmtime.ExitTrap as exc:
        exit_code = exc.code
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        failure = exc
    finally:
        del _runs[run_id]
        run.finish()
    if run.error is not None:
        raise run.error

    kind, message = _outcome(spec, run, exit_code, failure, _memory_used(wstore, instance))
    return TaskResult(
        kind,
        exit_code=exit_code if kind == "exit" else None,
        message=message,
        duration_ms=_ms(started),
        fuel_used=fuel - wstore.get_fuel(),
        stdout_bytes=run.counts["stdout"],
        stderr_bytes=run.counts["stderr"],
        stdout=b"".join(run.captured["stdout"]),
        stderr=b"".join(run.captured["stderr"]),
    )


def _wasi_config(spec: TaskSpec, run_id: int) -> wasmtime.WasiConfig:
    """argv, env, stdin and preopened dirs of `spec`; output to the callbacks of run `run_id`."""
    wasi = wasmtime.WasiConfig()
    wasi.argv = [_program_name(spec), *spec.args]
    if spec.env:
        wasi.env = spec.env
    if spec.stdin:
        private_api.set_stdin_bytes(wasi, spec.stdin)
    for dir in spec.dirs:
        if not os.path.isdir(dir.host):
            raise NotFound(f"No directory {dir.host} to give the module as {dir.guest}.", "Check the path.")
        wasi.preopen_dir(dir.host, dir.guest, fs_mutable=dir.writable)
    private_api.set_outputs(wasi, _on_stdout, _on_stderr, run_id)
    return wasi


def _program_name(spec: TaskSpec) -> str:
    """argv[0]: the task's name, else the module file's name."""
    if spec.name:
        return spec.name
    if isinstance(spec.module, str) and not spec.module.startswith("sha256:"):
        return Path(spec.module).name
    return "module.wasm"


def _outcome(
    spec: TaskSpec, run: _Run, exit_code: int | None, failure: Exception | None, memory: int | None
) -> tuple[str, str]:
    """The result kind and its one-sentence message."""
    limits = spec.limits
    if run.stop == "timeout":
        return "timeout", f"timed out after {limits.timeout:g} s"
    if run.stop == "cancelled":
        return "cancelled", "cancelled while running"
    if run.stop == "output_limit":
        return "output_limit", f"stopped: it wrote more than {limits.max_output:,} bytes of output"
    if isinstance(failure, wasmtime.Trap) and failure.trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
        return "out_of_fuel", f"out of fuel after {limits.fuel:,} units"
    cause = _cause(failure) if failure is not None else f"exited with code {exit_code}"
    if limits.memory is not None and (failure is not None or exit_code != 0):
        if "exceeds memory limits" in cause:
            return "out_of_memory", f"out of memory: {cause} of {_size(limits.memory)}"
        # memory.grow refused past the limit is no trap: the program fails its own way (malloc
        # returns NULL, then abort or exit), so a failure near the limit is put down to it.
        if memory is not None and limits.memory - memory < max(limits.memory // 8, _PAGE):
            return "out_of_memory", (
                f"out of memory: it used {_size(memory)} of its {_size(limits.memory)} limit ({cause})"
            )
    if failure is None:
        return "exit", cause
    return "trap", f"trap: {cause}"


def _cause(failure: Exception) -> str:
    """wasmtime's reason without its backtrace, as in "wasm `unreachable` instruction executed"."""
    text = failure.message if isinstance(failure, wasmtime.Trap) else str(failure)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].removeprefix("wasm trap: ") if lines else "unknown error"


def _memory_used(wstore: wasmtime.Store, instance: wasmtime.Instance | None) -> int | None:
    """Bytes of the module's exported memory, if it has one."""
    if instance is None:
        return None
    memory = instance.exports(wstore).get("memory")
    return memory.size(wstore) * _PAGE if isinstance(memory, wasmtime.Memory) else None


def _size(count: int) -> str:
    """`8 MiB`, `1.5 GiB`, `640 KiB`, `512 bytes`."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} bytes"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
