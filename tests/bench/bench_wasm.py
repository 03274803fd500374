"""Benchmark for wasm tasks (issue 6): per-task overhead in-process, and tasks/s through the pool.

    cd /work/main && sudo /tmp/venv/bin/python -m tests.bench.bench_wasm [--json PATH] [--runs 1000]

a. `run_task` in this process on a trivial WASI command (`_start` returns at once) with a warm
   module store: median and p99 of N runs (target <= 1 ms per task);
b. the same with a cold compile per task (a fresh store each time: nothing cached);
c. the same two for a real C program (tests/wasm/hello.c built with clang, when clang is here);
d. tasks/s through `TaskPool` (worker processes, history written to SQLite) on 1 and 2 workers,
   for the trivial command and for a CPU-bound one (~30 ms of wasm each).

No engine, no network. Everything it writes goes to a temporary folder removed at the end;
figures go to stdout (and ``--json PATH``), progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import wasmtime

from backends.wasm.history import TaskHistory
from backends.wasm.pool import TaskPool
from backends.wasm.runtime import run_task
from backends.wasm.spec import TaskSpec
from backends.wasm.store import ModuleStore
from tests.bench.bench_containers import (
    code_version,
    fmt,
    load_average,
    machine_info,
    median,
    print_table,
    progress,
)

TRIVIAL = '(module (memory (export "memory") 1) (func (export "_start")))'
# ~50 million loop turns (~30 ms here): CPU-bound work, where worker processes must scale.
SPIN = """(module (memory (export "memory") 1) (func (export "_start") (local i32)
  (loop $l (local.set 0 (i32.add (local.get 0) (i32.const 1)))
    (br_if $l (i32.lt_u (local.get 0) (i32.const 50000000))))))"""
HELLO = Path(__file__).resolve().parents[1] / "wasm" / "hello.c"


def p99(values: Sequence[float]) -> float:
    """The 99th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def in_process(module: bytes, runs: int, cold: bool, root: Path) -> list[float]:
    """Milliseconds per `run_task` call, the store warm (one store, warmed up) or cold (new each)."""
    times = []
    store = ModuleStore(root / "warm")
    if not cold:
        for _ in range(20):
            run_task(TaskSpec(module=module), store)
    for i in range(runs):
        if cold:
            store = ModuleStore(root / f"cold-{i}")
        spec = TaskSpec(module=module)
        started = time.perf_counter()
        result = run_task(spec, store)
        times.append((time.perf_counter() - started) * 1000)
        if result.kind != "exit" or result.exit_code != 0:
            raise RuntimeError(f"the benchmark module failed: {result}")
    if cold and store.compiles != 1:
        raise RuntimeError("a cold run did not compile")
    return times


async def through_pool(module: bytes, tasks: int, workers: int, root: Path) -> float:
    """Tasks per second through a pool of `workers` processes (workers started beforehand)."""
    pool = TaskPool(root / "modules", TaskHistory(root / f"tasks-{workers}.sqlite"), workers, tasks + 1)
    await pool.start()
    try:
        await pool.ready()
        warm = [await pool.submit(TaskSpec(module=module)) for _ in range(workers * 4)]
        await asyncio.gather(*(pool.wait(r.id) for r in warm))
        started = time.perf_counter()
        records = [await pool.submit(TaskSpec(module=module)) for _ in range(tasks)]
        done = await asyncio.gather(*(pool.wait(r.id) for r in records))
        elapsed = time.perf_counter() - started
        if any(r.state != "done" for r in done):
            raise RuntimeError("a pool task failed")
        return tasks / elapsed
    finally:
        await pool.close()


def build_hello(folder: Path) -> bytes | None:
    """tests/wasm/hello.c built for wasm32-wasi, or None without clang."""
    clang = shutil.which("clang")
    if clang is None or not HELLO.exists():
        return None
    out = folder / "hello.wasm"
    subprocess.run([clang, "--target=wasm32-wasi", "-O2", "-o", str(out), str(HELLO)], check=True)
    return out.read_bytes()


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--runs", type=int, default=1000, help="in-process runs, warm (1000)")
    parser.add_argument("--cold-runs", type=int, default=100, help="in-process runs, cold (100)")
    parser.add_argument("--pool-tasks", type=int, default=3000, help="trivial tasks, pool (3000)")
    parser.add_argument("--spin-tasks", type=int, default=100, help="CPU-bound tasks, pool (100)")
    args = parser.parse_args(argv)

    figures: dict[str, Any] = {"machine": machine_info(), "code": code_version(), "load": load_average()}
    with tempfile.TemporaryDirectory(prefix="berth-bench-wasm-") as temp:
        root = Path(temp)
        modules = {"trivial": bytes(wasmtime.wat2wasm(TRIVIAL))}
        hello = build_hello(root)
        if hello is not None:
            modules["hello.c"] = hello
        rows = []
        for name, module in modules.items():
            cold_runs = args.cold_runs if name == "trivial" else max(5, args.cold_runs // 5)
            progress(f"{name}: {args.runs} warm runs in-process")
            warm = in_process(module, args.runs, False, root / name)
            progress(f"{name}: {cold_runs} cold runs in-process")
            cold = in_process(module, cold_runs, True, root / name)
            figures[name] = {
                "warm_median_ms": median(warm),
                "warm_p99_ms": p99(warm),
                "cold_median_ms": median(cold),
                "cold_p99_ms": p99(cold),
            }
            target = "target <= 1 ms: " + ("met" if median(warm) <= 1 else "MISSED")
            rows += [
                (
                    f"{name}, warm cache, median",
                    fmt(median(warm), 3, " ms"),
                    target if name == "trivial" else "",
                ),
                (f"{name}, warm cache, p99", fmt(p99(warm), 3, " ms"), f"{args.runs} runs"),
                (f"{name}, cold compile, median", fmt(median(cold), 3, " ms"), ""),
                (f"{name}, cold compile, p99", fmt(p99(cold), 3, " ms"), f"{cold_runs} runs"),
            ]
        print_table("Per task, in-process (run_task)", rows, sys.stdout)

        rows = []
        spin = bytes(wasmtime.wat2wasm(SPIN))
        for name, module, count in (
            ("trivial", modules["trivial"], args.pool_tasks),
            ("cpu", spin, args.spin_tasks),
        ):
            for workers in (1, 2):
                progress(f"pool: {count} {name} tasks on {workers} worker(s)")
                rate = asyncio.run(through_pool(module, count, workers, root))
                figures[f"pool_{name}_{workers}_tasks_per_s"] = rate
                rows.append(
                    (f"{name} tasks, {workers} worker(s)", fmt(rate, 1 if name == "cpu" else 0, "/s"), "")
                )
            one, two = figures[f"pool_{name}_1_tasks_per_s"], figures[f"pool_{name}_2_tasks_per_s"]
            rows.append((f"{name}: 2 workers / 1 worker", fmt(two / one, 2, "x"), "machine has 2 cores"))
        print_table("Through the pool (worker processes, history in SQLite)", rows, sys.stdout)
    print(f"\n{figures['code']}; load {figures['load']}; {figures['machine']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
