"""The one worker fleet (backends/wasm/fleet.py) on real worker processes running real WASI
programs (tests/wasm/*.c): batches, a worker killed mid-task, cancel, stop; then its two users,
the local task pool and a provider, each through a worker killed by its PID.

Every process killed or stopped here was started by the test (its fleet, its pool, its provider),
and is found by its PID: the children of the test's process, or of a process it started, whose
command line runs `backends.wasm.worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from broker_helpers import Procs, children_of, start_paired_provider, wait_for

from backends.broker import keys
from backends.broker.provider import Provider
from backends.streams import LogLine
from backends.wasm.fleet import CANCEL_GRACE, STOP_GRACE, FleetHooks, WorkerFleet
from backends.wasm.history import TaskHistory
from backends.wasm.pool import TaskPool
from backends.wasm.spec import Limits, TaskResult, TaskSpec

TICKS = b"".join(b"tick %d\n" % i for i in range(10))
"""What tests/wasm/slow.c prints over its one second."""


@dataclass
class Tasks:
    """The fleet's user here: the specs it runs, and everything the fleet tells it, in order."""

    specs: dict[str, TaskSpec] = field(default_factory=dict)
    handed: list[str] = field(default_factory=list)
    """Tasks in the order the fleet handed them to a worker (asked for their spec)."""
    started: list[str] = field(default_factory=list)
    output: dict[str, bytearray] = field(default_factory=dict)
    ended: dict[str, TaskResult] = field(default_factory=dict)
    lost: dict[str, str] = field(default_factory=dict)

    def hooks(self) -> FleetHooks:
        """The hooks a fleet reports to this user through."""

        def spec_for(task_id: str) -> TaskSpec:
            self.handed.append(task_id)
            return self.specs[task_id]

        def output(task_id: str, stream: str, data: bytes) -> None:
            self.output.setdefault(task_id, bytearray()).extend(data)

        return FleetHooks(
            spec_for,
            output,
            self.ended.__setitem__,
            self.lost.__setitem__,
            started=lambda task_id, at: self.started.append(task_id),
        )

    def add(self, fleet: WorkerFleet, task_id: str, spec: TaskSpec) -> None:
        """Run `spec` on the fleet as `task_id`."""
        self.specs[task_id] = spec
        fleet.run(task_id)

    async def begin(self, fleet: WorkerFleet, task_id: str, spec: TaskSpec) -> None:
        """Run `spec` on the fleet as `task_id`, and wait until a worker has begun it."""
        self.add(fleet, task_id, spec)
        await until(lambda: task_id in self.started)

    def over(self, task_id: str) -> bool:
        """True once the fleet told how the task ended."""
        return task_id in self.ended or task_id in self.lost


async def until(check: Callable[[], object], timeout: float = 15.0) -> None:
    """Wait until `check()` is true (the event loop runs meanwhile)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def loop_gaps() -> AsyncIterator[list[float]]:
    """The seconds between turns of a 10 ms ticker on the event loop while the block runs: a long
    gap is the loop blocked."""
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    ticker = asyncio.get_running_loop().create_task(tick())
    try:
        yield gaps
    finally:
        ticker.cancel()


def alive(pid: int) -> bool:
    """True while a process of that PID exists (a zombie counts: it was not reaped)."""
    return Path(f"/proc/{pid}").exists()


def workers_of(pid: int) -> list[int]:
    """The wasm worker processes among the children of process `pid`."""
    found = []
    for child in children_of(pid):
        try:
            if b"backends.wasm.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:  # it ended meanwhile
            pass
    return found


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One module store for the file: each program is compiled once, not once per test."""
    return tmp_path_factory.mktemp("modules")


@contextlib.asynccontextmanager
async def started_fleet(store_root: Path, size: int) -> AsyncIterator[tuple[Tasks, WorkerFleet]]:
    """A user and a fleet of `size` workers (ready), stopped afterwards."""
    tasks = Tasks()
    fleet = WorkerFleet(tasks.hooks(), size, store_root)
    fleet.start()
    try:
        assert await fleet.ready()
        yield tasks, fleet
    finally:
        await fleet.stop()


@pytest.fixture
async def tasks_and_fleet(store_root: Path) -> AsyncIterator[tuple[Tasks, WorkerFleet]]:
    """A user and a one-worker fleet (ready), stopped afterwards."""
    async with started_fleet(store_root, 1) as started:
        yield started


# The fleet -------------------------------------------------------------------------------------


async def test_a_backlog_goes_out_in_batches_and_a_lone_task_does_not_wait_behind_a_long_one(
    store_root: Path, wasm_programs: dict[str, Path]
) -> None:
    async with started_fleet(store_root, 2) as (tasks, fleet):
        idle, echo = TaskSpec(module=str(wasm_programs["idle"])), TaskSpec(module=str(wasm_programs["echo"]))
        tasks.add(fleet, "long-1", idle)
        tasks.add(fleet, "long-2", idle)
        await until(lambda: len(tasks.started) == 2)
        assert fleet.busy == 2

        # Both workers busy, no backlog: the task waits here, not behind either long one.
        tasks.add(fleet, "lone", echo)
        await asyncio.sleep(0.3)
        assert tasks.handed == ["long-1", "long-2"] and fleet.queued == 1

        # A backlog of 12: each worker holds half its fair share (3), so two more go to each, in
        # one pipe message each, the least loaded first; eight stay here.
        for i in range(11):
            tasks.add(fleet, f"backlog-{i}", echo)
        await asyncio.sleep(0.3)
        assert tasks.handed[2:] == ["lone", "backlog-0", "backlog-1", "backlog-2"]
        assert fleet.queued == 8 and fleet.pending == 14

        fleet.cancel("long-1")
        fleet.cancel("long-2")
        await until(lambda: len(tasks.ended) == 14)
        assert [(r.kind, r.message) for t, r in tasks.ended.items() if t.startswith("long")] == [
            ("cancelled", "cancelled while running")
        ] * 2
        assert all(r.ok for t, r in tasks.ended.items() if not t.startswith("long")), tasks.ended
        assert sorted(tasks.handed) == sorted(tasks.specs)  # each spec asked for once
        assert tasks.lost == {} and fleet.pending == 0 and fleet.busy == 0


async def test_a_worker_killed_mid_task_loses_that_task_alone_and_another_takes_its_place(
    tasks_and_fleet: tuple[Tasks, WorkerFleet], wasm_programs: dict[str, Path]
) -> None:
    tasks, fleet = tasks_and_fleet
    (first_pid,) = workers_of(os.getpid())
    tasks.add(fleet, "slow", TaskSpec(module=str(wasm_programs["slow"])))
    await until(lambda: b"tick 2" in tasks.output.get("slow", b""))
    for i in range(6):  # a backlog: two go to the worker behind the slow one
        tasks.add(fleet, f"echo-{i}", TaskSpec(module=str(wasm_programs["echo"]), args=(str(i),)))
    await until(lambda: len(tasks.handed) == 3)
    assert tasks.handed == ["slow", "echo-0", "echo-1"]

    os.kill(first_pid, signal.SIGKILL)
    await until(lambda: tasks.over("slow"))
    assert tasks.lost == {"slow": "the worker process running it died (exit code -9)"}
    await until(lambda: len(tasks.ended) == 6)
    # What the dead worker held but had not started ran on the one in its place, each once.
    assert all(result.ok for result in tasks.ended.values()) and "slow" not in tasks.ended
    for i in range(6):
        assert f"arg 1: {i}\n".encode() in tasks.output[f"echo-{i}"]
        assert tasks.started.count(f"echo-{i}") == 1
    (second_pid,) = workers_of(os.getpid())
    assert second_pid != first_pid and not alive(first_pid)

    tasks.add(fleet, "next", TaskSpec(module=str(wasm_programs["slow"])))
    await until(lambda: tasks.over("next"))
    assert tasks.ended["next"].ok and bytes(tasks.output["next"]) == TICKS
    assert workers_of(os.getpid()) == [second_pid]


async def test_cancel_a_queued_task_and_a_running_one(
    tasks_and_fleet: tuple[Tasks, WorkerFleet], wasm_programs: dict[str, Path]
) -> None:
    tasks, fleet = tasks_and_fleet
    (pid,) = workers_of(os.getpid())
    await tasks.begin(fleet, "spin", TaskSpec(module=str(wasm_programs["loop"])))
    tasks.add(fleet, "queued", TaskSpec(module=str(wasm_programs["echo"])))
    await asyncio.sleep(0.1)
    assert fleet.queued == 1

    assert fleet.cancel("queued")  # still here: it ends at once, never handed to a worker
    assert tasks.ended["queued"] == TaskResult("cancelled", message="cancelled before it started")
    assert fleet.queued == 0 and tasks.handed == ["spin"]
    asked = time.monotonic()
    assert fleet.cancel("spin")
    await until(lambda: tasks.over("spin"))
    assert time.monotonic() - asked < 1.0
    assert (tasks.ended["spin"].kind, tasks.ended["spin"].message) == ("cancelled", "cancelled while running")
    assert not fleet.cancel("spin")  # over: the fleet holds it no more
    assert workers_of(os.getpid()) == [pid] and fleet.pending == 0


async def test_a_worker_that_does_not_answer_a_cancel_is_killed_and_replaced(
    tasks_and_fleet: tuple[Tasks, WorkerFleet], wasm_programs: dict[str, Path]
) -> None:
    tasks, fleet = tasks_and_fleet
    (pid,) = workers_of(os.getpid())
    await tasks.begin(fleet, "stuck", TaskSpec(module=str(wasm_programs["idle"])))
    os.kill(pid, signal.SIGSTOP)  # hung: it reads no cancel
    asked = time.monotonic()
    fleet.cancel("stuck")
    await until(lambda: tasks.over("stuck"), CANCEL_GRACE + 5)
    assert CANCEL_GRACE <= time.monotonic() - asked < CANCEL_GRACE + 2
    assert tasks.ended["stuck"] == TaskResult("cancelled", message="cancelled: its worker was stopped")
    assert not alive(pid)
    tasks.add(fleet, "after", TaskSpec(module=str(wasm_programs["echo"])))
    await until(lambda: tasks.over("after"))
    assert tasks.ended["after"].ok and workers_of(os.getpid()) != [pid]


async def test_stop_leaves_no_process_and_never_blocks_the_event_loop(
    store_root: Path, wasm_programs: dict[str, Path]
) -> None:
    async with started_fleet(store_root, 2) as (tasks, fleet):
        pids = workers_of(os.getpid())
        await tasks.begin(fleet, "running", TaskSpec(module=str(wasm_programs["idle"])))
        os.kill(pids[0], signal.SIGSTOP)  # it cannot hear "stop": it is killed after the grace

        began = time.monotonic()
        async with loop_gaps() as gaps:
            await fleet.stop()
        took = time.monotonic() - began
    assert took >= STOP_GRACE * 0.9, took  # it waited for the hung one...
    assert max(gaps) < 0.5, max(gaps)  # ...with the event loop running all along
    assert not any(alive(pid) for pid in pids)
    assert workers_of(os.getpid()) == []
    assert tasks.ended == {} and tasks.lost == {}  # stopping tells nothing: the user ends its tasks


# Its users -------------------------------------------------------------------------------------


@pytest.fixture
async def one_worker_pool(store_root: Path, tmp_path: Path) -> AsyncIterator[tuple[TaskPool, int]]:
    """A started task pool with one worker (ready), and that worker's PID; afterwards, once the
    pool is closed, no worker process is left."""
    pool = TaskPool(store_root, TaskHistory(tmp_path / "tasks.sqlite"), workers=1)
    await pool.start()
    try:
        await pool.ready()
        (pid,) = workers_of(os.getpid())
        yield pool, pid
    finally:
        await pool.close()
    assert workers_of(os.getpid()) == []


async def test_the_pool_reports_a_task_whose_worker_was_killed_and_runs_the_next(
    one_worker_pool: tuple[TaskPool, int], wasm_programs: dict[str, Path]
) -> None:
    pool, pid = one_worker_pool
    record = await pool.submit(TaskSpec(module=str(wasm_programs["slow"])))
    await until(lambda: record.state == "running")
    await asyncio.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    done = await asyncio.wait_for(pool.wait(record.id), 10)
    died = "the worker process running it died (exit code -9)"
    assert done.state == "failed" and done.result is not None
    assert (done.result.kind, done.result.message) == ("trap", died)
    lines = [line for batch in [b async for b in pool.output(record.id)] for line in batch]
    assert lines[0] == LogLine("tick 0", "stdout") and lines[-1] == LogLine(died, "system")

    after = await asyncio.wait_for(pool.wait((await pool.submit(record.spec)).id), 10)
    assert (after.state, after.exit_code) == ("done", 0)
    (new_pid,) = workers_of(os.getpid())
    assert new_pid != pid and not alive(pid)


async def test_cancelling_a_pool_task_that_waits_behind_a_long_one_leaves_the_long_one_running(
    one_worker_pool: tuple[TaskPool, int], wasm_programs: dict[str, Path]
) -> None:
    # With a backlog the worker holds tasks behind the one it runs. Cancelling one of them must
    # not kill that worker when the grace for a cancel runs out: the task it runs was not asked
    # to stop (the pool killed it, and the running task failed as if its worker had crashed).
    pool, pid = one_worker_pool
    # Runs for 5 s, then times out.
    long = await pool.submit(TaskSpec(module=str(wasm_programs["idle"]), limits=Limits(timeout=5)))
    await until(lambda: long.state == "running")
    waiting = [await pool.submit(TaskSpec(module=str(wasm_programs["echo"]))) for _ in range(6)]
    await asyncio.sleep(0.2)  # the first two are in the worker by now, behind the long one
    cancelling = asyncio.get_running_loop().create_task(pool.cancel(waiting[0].id))
    await asyncio.sleep(CANCEL_GRACE + 0.5)
    assert workers_of(os.getpid()) == [pid] and long.state == "running"
    ended = await asyncio.wait_for(pool.wait(long.id), 5)
    assert ended.result is not None and ended.result.kind == "timeout", ended.result
    await asyncio.wait_for(cancelling, 5)
    assert waiting[0].state == "cancelled" and waiting[0].started_at is None
    rest = await asyncio.gather(*(pool.wait(r.id) for r in waiting[1:]))
    assert [r.state for r in rest] == ["done"] * 5
    assert workers_of(os.getpid()) == [pid]


def test_a_provider_whose_worker_was_killed_has_the_task_retried_and_runs_the_next(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker")
    provider = start_paired_provider(procs, broker, "fleet")
    wait_for(lambda: workers_of(provider.pid), 10, "the provider's worker")
    (pid,) = workers_of(provider.pid)
    slow = broker.upload(wasm_programs["slow"])
    (task,) = broker.submit([{"module": slow}])
    wait_for(lambda: broker.get(f"/api/v1/tasks/{task}")["state"] == "running", 10, "the task to start")
    time.sleep(0.5)  # mid-task
    os.kill(pid, signal.SIGKILL)

    view = broker.wait_task(task)
    # Lost with its worker, so the broker ran it again: here, on the worker that took its place.
    assert (view["state"], view["exit_code"], view["attempts"], view["provider"]) == ("done", 0, 2, "fleet")
    assert view["stdout"] == TICKS.decode()
    assert "a worker process died (exit code -9); starting another" in provider.output()
    (new_pid,) = workers_of(provider.pid)
    assert new_pid != pid and not alive(pid)
    (after,) = broker.submit([{"module": slow}])
    assert broker.wait_task(after)["state"] == "done"
    assert provider.output().count("admitted by the broker") == 1  # the same connection all along
    assert provider.stop(15.0) == 0
    assert not alive(new_pid)


async def test_a_provider_in_the_consoles_event_loop_stops_its_workers_without_blocking_it(
    procs: Procs, tmp_path: Path
) -> None:
    # As the console runs its embedded broker's provider: on its own event loop. A hung worker
    # costs the stop its grace, in a thread: the loop (the console's screen) keeps running.
    broker = procs.broker(tmp_path / "broker")
    key = keys.load_or_create(tmp_path / "inside.key")
    provider = Provider(broker.url, 1, key, "inside", store=tmp_path / "inside-store")
    running = asyncio.get_running_loop().create_task(provider.run())
    try:
        await asyncio.to_thread(broker.pair, provider.fingerprint, "inside")
        await asyncio.wait_for(provider.admitted.wait(), 30)
        await until(lambda: workers_of(os.getpid()) != [])
        (pid,) = workers_of(os.getpid())
        os.kill(pid, signal.SIGSTOP)
        async with loop_gaps() as gaps:
            provider.drain()
            await asyncio.wait_for(asyncio.shield(running), STOP_GRACE + 10)
        assert max(gaps) < 0.5, max(gaps)
        assert not alive(pid) and workers_of(os.getpid()) == []
    finally:
        provider.drain()
        await asyncio.wait_for(running, 30)
