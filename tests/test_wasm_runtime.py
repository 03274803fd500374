"""The wasm runtime and module store, with real WASI programs compiled from tests/wasm/*.c."""

import hashlib
import threading
import time
from pathlib import Path

import pytest

from backends.errors import NotFound
from backends.wasm.runtime import TICK, run_task
from backends.wasm.spec import RESULT_KINDS, Limits, Preopen, TaskResult, TaskSpec
from backends.wasm.store import ModuleStore

MiB = 1 << 20


@pytest.fixture
def store(tmp_path: Path) -> ModuleStore:
    return ModuleStore(tmp_path / "modules")


def run(store: ModuleStore, programs: dict[str, Path], name: str, **spec: object) -> TaskResult:
    result = run_task(TaskSpec(module=str(programs[name]), **spec), store)  # type: ignore[arg-type]
    assert result.kind in RESULT_KINDS
    return result


def test_hello_prints_and_exits_0(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    result = run(store, wasm_programs, "hello")
    assert (result.kind, result.exit_code, result.message) == ("exit", 0, "exited with code 0")
    assert result.ok
    assert result.stdout == b"hello from wasm\n"
    assert (result.stdout_bytes, result.stderr_bytes) == (16, 0)
    assert result.fuel_used is not None and 0 < result.fuel_used < 100_000


def test_args_and_env_reach_the_module(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    result = run(store, wasm_programs, "echo", args=("one", "two words"), env=(("GREETING", "hi there"),))
    assert result.ok
    assert result.stdout.decode().splitlines() == [
        "arg 0: echo.wasm",
        "arg 1: one",
        "arg 2: two words",
        "env GREETING=hi there",
    ]


def test_stdin_is_the_given_bytes(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    data = bytes(range(256)) * 64
    result = run(store, wasm_programs, "cat", stdin=data)
    assert result.ok
    assert result.stdout == data


def test_exit_code_from_proc_exit(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    result = run(store, wasm_programs, "exit3")
    assert (result.kind, result.exit_code, result.message) == ("exit", 3, "exited with code 3")
    assert not result.ok
    assert result.stdout == b"exiting with 3\n"


def test_trap_is_named(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    result = run(store, wasm_programs, "trap")
    assert (result.kind, result.exit_code) == ("trap", None)
    assert result.message == "trap: wasm `unreachable` instruction executed"
    assert result.stdout == b"about to trap\n"  # what it wrote before is kept


def test_fuel_runs_out(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    result = run(store, wasm_programs, "loop", limits=Limits(fuel=1_000_000))
    assert (result.kind, result.message) == ("out_of_fuel", "out of fuel after 1,000,000 units")
    assert result.fuel_used == 1_000_000


def test_wall_time_runs_out(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    run(store, wasm_programs, "loop", limits=Limits(fuel=1000))  # compile outside the timing
    result = run(store, wasm_programs, "loop", limits=Limits(timeout=0.3))
    assert (result.kind, result.message) == ("timeout", "timed out after 0.3 s")
    assert 300 <= result.duration_ms < 300 + 1000 * 20 * TICK


def test_cancel_stops_a_running_task(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    result = run_task(TaskSpec(module=str(wasm_programs["loop"])), store, cancel=cancel)
    assert (result.kind, result.message) == ("cancelled", "cancelled while running")
    assert time.monotonic() - started < 2


def test_cancelled_before_start_does_not_run(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    cancel = threading.Event()
    cancel.set()
    result = run_task(TaskSpec(module=str(wasm_programs["hello"])), store, cancel=cancel)
    assert result.kind == "cancelled"
    assert result.stdout_bytes == 0


def test_memory_bomb_is_out_of_memory(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    result = run(store, wasm_programs, "membomb", limits=Limits(memory=8 * MiB))
    assert result.kind == "out_of_memory"
    assert result.message.startswith("out of memory: it used ")
    assert "of its 8 MiB limit" in result.message
    assert result.stderr.startswith(b"malloc failed after ")


def test_memory_below_a_modules_minimum(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    result = run(store, wasm_programs, "hello", limits=Limits(memory=64 * 1024))
    assert result.kind == "out_of_memory"
    assert "exceeds memory limits" in result.message


def test_output_limit_stops_the_task(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    result = run(store, wasm_programs, "hello", limits=Limits(max_output=5))
    assert result.kind == "output_limit"
    assert result.message == "stopped: it wrote more than 5 bytes of output"
    assert result.stdout == b"hello"


def test_output_limit_stops_a_chatty_loop(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    result = run(store, wasm_programs, "cat", stdin=b"x" * 100_000, limits=Limits(max_output=1000))
    assert result.kind == "output_limit"
    assert result.stdout_bytes == 1000


def test_slow_printer_streams_live(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    seen: list[tuple[float, str, bytes]] = []
    result = run_task(
        TaskSpec(module=str(wasm_programs["slow"])),
        store,
        on_output=lambda stream, chunk: seen.append((time.monotonic(), stream, chunk)),
    )
    ended = time.monotonic()
    assert result.ok
    assert b"".join(chunk for _, _, chunk in seen) == b"".join(b"tick %d\n" % i for i in range(10))
    assert {stream for _, stream, _ in seen} == {"stdout"}
    assert result.stdout == b""  # streamed, not kept
    first = seen[0][0]
    assert ended - first >= 0.8  # the first line came ~0.9 s before the end
    lines_before_last_half = [t for t, _, chunk in seen if chunk.endswith(b"\n") and t < ended - 0.4]
    assert len(lines_before_last_half) >= 4


def test_on_output_error_stops_the_task_and_is_raised(
    store: ModuleStore, wasm_programs: dict[str, Path]
) -> None:
    def broken(stream: str, chunk: bytes) -> None:
        raise RuntimeError("consumer broke")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="consumer broke"):
        run_task(TaskSpec(module=str(wasm_programs["slow"])), store, on_output=broken)
    assert time.monotonic() - started < 0.8  # stopped, not run to its end


def test_preopen_is_read_only_unless_writable(
    store: ModuleStore, wasm_programs: dict[str, Path], tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    read_only = run(
        store, wasm_programs, "writefile", args=("/data/out.txt", "hi"), dirs=(Preopen(str(shared), "/data"),)
    )
    assert (read_only.kind, read_only.exit_code) == ("exit", 1)
    assert read_only.stderr.startswith(b"cannot open /data/out.txt: ")
    assert not (shared / "out.txt").exists()

    writable = run(
        store,
        wasm_programs,
        "writefile",
        args=("/data/out.txt", "hi"),
        dirs=(Preopen(str(shared), "/data", writable=True),),
    )
    assert writable.ok
    assert (shared / "out.txt").read_text() == "hi"


def test_a_preopened_dir_that_does_not_exist(
    store: ModuleStore, wasm_programs: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(NotFound, match="No directory"):
        run(store, wasm_programs, "hello", dirs=(Preopen(str(tmp_path / "nope"), "/data"),))


def test_missing_import(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    result = run(store, wasm_programs, "missing_import")
    assert result.kind == "missing_import"
    assert result.message == "missing import env::foo (berth runs WASI preview 1 modules)"


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (b"#!/bin/sh\necho hi\n", "not a wasm module: it does not begin with the wasm magic number (\\0asm)"),
        (b"\0asm\1\0\0\0\xff not a section", "not a wasm module: malformed section id (at offset 0x8)"),
    ],
)
def test_invalid_module(store: ModuleStore, module: bytes, message: str) -> None:
    result = run_task(TaskSpec(module=module), store)
    assert (result.kind, result.message) == ("invalid_module", message)


def test_missing_module_file(store: ModuleStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="No module file"):
        run_task(TaskSpec(module=str(tmp_path / "nope.wasm")), store)


def test_module_by_bytes_and_by_ref(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    data = wasm_programs["hello"].read_bytes()
    by_bytes = run_task(TaskSpec(module=data), store)
    ref = "sha256:" + hashlib.sha256(data).hexdigest()
    assert store.path(ref).read_bytes() == data  # kept in the store
    by_ref = run_task(TaskSpec(module=ref, name="hi"), store)
    assert by_bytes.stdout == by_ref.stdout == b"hello from wasm\n"
    assert store.compiles == 1
    with pytest.raises(NotFound, match="No module sha256:"):
        run_task(TaskSpec(module="sha256:" + "0" * 64), store)


def test_resolve_and_get(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    path = wasm_programs["hello"]
    data = path.read_bytes()
    ref, got = store.resolve(str(path))
    assert (ref, got) == (store.put(data), data)
    assert store.resolve(ref) == (ref, data) == store.resolve(data)
    assert store.get(ref) == data


def test_second_run_does_not_compile(tmp_path: Path, wasm_programs: dict[str, Path]) -> None:
    root = tmp_path / "modules"
    hello = TaskSpec(module=str(wasm_programs["hello"]))
    first = ModuleStore(root)
    assert run_task(hello, first).ok
    assert (first.compiles, first.cache_hits) == (1, 0)
    assert run_task(hello, first).ok
    assert (first.compiles, first.cache_hits) == (1, 1)  # from memory

    # A new store (another process, a restart) loads the artifact from disk.
    second = ModuleStore(root)
    assert run_task(hello, second).ok
    assert (second.compiles, second.disk_loads, second.cache_hits) == (0, 1, 1)


@pytest.mark.parametrize("damage", ["bytes", "bytes_and_checksum", "truncated"])
def test_corrupt_artifact_is_rebuilt(tmp_path: Path, wasm_programs: dict[str, Path], damage: str) -> None:
    root = tmp_path / "modules"
    hello = TaskSpec(module=str(wasm_programs["hello"]))
    first = ModuleStore(root)
    run_task(hello, first)
    ref, _ = first.resolve(str(wasm_programs["hello"]))
    artifact = first.artifact(ref)
    checksum = artifact.with_name(artifact.name + ".sha256")
    good = artifact.read_bytes()
    bad = good[: len(good) // 2] if damage == "truncated" else b"\x7fELF" + b"\0" * 4096
    artifact.write_bytes(bad)
    if damage == "bytes_and_checksum":  # passes the checksum: wasmtime itself must refuse it
        checksum.write_text(hashlib.sha256(bad).hexdigest())

    second = ModuleStore(root)
    result = run_task(hello, second)
    assert result.ok and result.stdout == b"hello from wasm\n"
    assert (second.rebuilds, second.compiles, second.disk_loads) == (1, 1, 0)
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == checksum.read_text()

    third = ModuleStore(root)
    assert run_task(hello, third).ok
    assert (third.compiles, third.disk_loads) == (0, 1)


def test_another_wasmtime_version_is_not_loaded(tmp_path: Path, wasm_programs: dict[str, Path]) -> None:
    root = tmp_path / "modules"
    hello = TaskSpec(module=str(wasm_programs["hello"]))
    older = ModuleStore(root, version="0.0.1")
    assert run_task(hello, older).ok
    current = ModuleStore(root)
    assert run_task(hello, current).ok
    assert (current.compiles, current.disk_loads) == (1, 0)
    ref, _ = current.resolve(str(wasm_programs["hello"]))
    assert older.artifact(ref) != current.artifact(ref)
    assert older.artifact(ref).exists() and current.artifact(ref).exists()


def test_one_tasks_ticks_leave_another_running(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    """A timed task makes the shared engine tick; a task without a deadline runs on through it."""
    results: dict[str, TaskResult] = {}

    def go(name: str, spec: TaskSpec) -> None:
        results[name] = run_task(spec, store)

    threads = [
        threading.Thread(
            target=go, args=("loop", TaskSpec(module=str(wasm_programs["loop"]), limits=Limits(timeout=0.5)))
        ),
        threading.Thread(target=go, args=("slow", TaskSpec(module=str(wasm_programs["slow"])))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["loop"].kind == "timeout"
    assert results["slow"].ok and results["slow"].stdout_bytes == 70


def test_trivial_task_is_cheap(store: ModuleStore, wasm_programs: dict[str, Path]) -> None:
    spec = TaskSpec(module=str(wasm_programs["trivial"]))
    run_task(spec, store)
    times = []
    for _ in range(200):
        started = time.perf_counter()
        assert run_task(spec, store).ok
        times.append(time.perf_counter() - started)
    assert sorted(times)[100] < 0.005  # ~0.2 ms here; generous for a loaded CI machine
