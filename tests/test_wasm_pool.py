"""The task pool on real worker processes running real WASI programs (tests/wasm/*.c)."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backends.errors import Conflict
from backends.streams import LogLine
from backends.wasm.history import TaskHistory
from backends.wasm.pool import TaskPool, TaskRecord
from backends.wasm.spec import Limits, TaskSpec


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One module store for the file: each program is compiled once, not once per test."""
    return tmp_path_factory.mktemp("modules")


async def started_pool(root: Path, history: Path, workers: int = 2, **kwargs: int) -> TaskPool:
    pool = TaskPool(root, TaskHistory(history), workers=workers, **kwargs)
    await pool.start()
    return pool


@pytest.fixture
async def pool(store_root: Path, tmp_path: Path) -> AsyncIterator[TaskPool]:
    pool = await started_pool(store_root, tmp_path / "tasks.sqlite")
    try:
        yield pool
    finally:
        await pool.close()


async def until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def test_two_workers_run_two_tasks_at_once(pool: TaskPool, wasm_programs: dict[str, Path]) -> None:
    states: list[tuple[str, str]] = []
    pool.subscribe(lambda record: states.append((record.id, record.state)))
    slow = TaskSpec(module=str(wasm_programs["slow"]))
    await pool.ready()
    started = time.monotonic()
    first, second = await pool.submit(slow), await pool.submit(slow)
    done = await asyncio.gather(pool.wait(first.id), pool.wait(second.id))
    elapsed = time.monotonic() - started
    assert [r.state for r in done] == ["done", "done"]
    assert [r.exit_code for r in done] == [0, 0]
    # Each prints for ~1 s: together in well under the 2 s they would take one after the other
    # (the first run of a module in a worker also loads its compiled code).
    assert elapsed < 1.7, elapsed
    running = [i for i, s in states if s == "running" and i in (first.id, second.id)]
    assert set(running) == {first.id, second.id}
    assert first.started_at is not None and second.started_at is not None
    assert abs(first.started_at - second.started_at) < 0.5
    assert pool.tasks()[0].id == second.id  # newest first


async def test_a_full_queue_refuses_with_a_clear_message(
    store_root: Path, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    pool = await started_pool(store_root, tmp_path / "tasks.sqlite", workers=1, queue_limit=2)
    try:
        spin = TaskSpec(module=str(wasm_programs["loop"]))
        accepted: list[TaskRecord] = []
        with pytest.raises(Conflict, match="The task queue is full: 2 tasks are waiting") as refused:
            for _ in range(10):
                accepted.append(await pool.submit(spin))
        assert "cancel some" in str(refused.value)
        # Two wait in the pool; one more may have been handed to the worker, one runs.
        assert 2 <= len(accepted) <= 4
        for record in accepted:
            await pool.cancel(record.id)
        assert {r.state for r in accepted} == {"cancelled"}
    finally:
        await pool.close()


async def test_cancel_a_queued_task_and_a_running_one(
    store_root: Path, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    pool = await started_pool(store_root, tmp_path / "tasks.sqlite", workers=1)
    try:
        spin = TaskSpec(module=str(wasm_programs["loop"]))
        running = await pool.submit(spin)
        await until(lambda: running.state == "running")
        await asyncio.sleep(0.5)  # past loading the module: in its loop
        handed, waiting = await pool.submit(spin), await pool.submit(spin)

        await pool.cancel(waiting.id)
        assert waiting.state == "cancelled" and waiting.started_at is None
        assert waiting.result is not None and waiting.result.kind == "cancelled"

        asked = time.monotonic()
        await pool.cancel(running.id)
        assert time.monotonic() - asked < 1.0
        assert running.state == "cancelled"
        assert running.result is not None and running.result.kind == "cancelled"
        assert running.result.message == "cancelled while running"

        # The one handed to the worker while the first ran starts now, and stops too.
        await until(lambda: handed.state == "running")
        await asyncio.sleep(0.2)
        await pool.cancel(handed.id)
        assert handed.state == "cancelled"
        lines = [batch async for batch in pool.output(handed.id)]
        assert lines[-1] == [LogLine("cancelled while running", "system")]
    finally:
        await pool.close()


async def test_history_survives_a_new_pool_on_the_same_file(
    store_root: Path, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    history = tmp_path / "tasks.sqlite"
    pool = await started_pool(store_root, history, workers=1)
    try:
        ok = await pool.wait((await pool.submit(TaskSpec(module=str(wasm_programs["hello"])))).id)
        three = await pool.wait((await pool.submit(TaskSpec(module=str(wasm_programs["exit3"])))).id)
    finally:
        await pool.close()
    assert (ok.state, three.state, three.exit_code) == ("done", "failed", 3)

    again = await started_pool(store_root, history, workers=1)
    try:
        assert [r.id for r in again.tasks()] == [three.id, ok.id]
        kept = again.get(ok.id)
        assert kept.to_json()["module"] == "hello.wasm"
        assert (kept.state, kept.exit_code, kept.spec) == ("done", 0, ok.spec)
        assert kept.duration_ms == pytest.approx(ok.duration_ms, abs=0.001) and kept.fuel_used == ok.fuel_used
        batches = [batch async for batch in again.output(ok.id)]
        assert batches[0][0].stream == "stdout" and "hello" in batches[0][0].text.lower()
        assert batches[-1] == [LogLine("exited with code 0", "system")]
        assert again.get(three.id).to_json()["exit_code"] == 3
    finally:
        await again.close()


async def test_output_replays_what_came_then_streams_live(
    pool: TaskPool, wasm_programs: dict[str, Path]
) -> None:
    record = await pool.submit(TaskSpec(module=str(wasm_programs["slow"])))
    await until(lambda: record.state == "running")
    first = pool.output(record.id)
    await anext(first)  # tick 0 has been printed
    await asyncio.sleep(0.25)  # ...and two more since

    seen: list[tuple[list[LogLine], str]] = []
    async for batch in pool.output(record.id):
        seen.append((batch, record.state))
    await first.aclose()
    replay, state = seen[0]
    assert state == "running" and [line.text for line in replay][:3] == ["tick 0", "tick 1", "tick 2"]
    # Later lines came one by one while it was still running, not all at the end.
    live = [batch for batch, state in seen[1:] if state == "running"]
    assert len(live) >= 3
    texts = [line.text for batch, _ in seen for line in batch]
    assert texts == [f"tick {i}" for i in range(10)] + ["exited with code 0"]
    assert seen[-1][0][0].stream == "system"


async def test_drop_and_rerun(
    pool: TaskPool, store_root: Path, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    echo = TaskSpec(module=str(wasm_programs["echo"]), args=("a", "b"), env=(("GREETING", "hi"),))
    first = await pool.wait((await pool.submit(echo)).id)
    again = await pool.wait((await pool.rerun(first.id)).id)
    assert again.id != first.id and again.spec == first.spec and again.state == "done"
    assert [r.id for r in pool.tasks()[:2]] == [again.id, first.id]

    spin = await pool.submit(TaskSpec(module=str(wasm_programs["loop"]), limits=Limits(timeout=5)))
    with pytest.raises(Conflict, match=f"Task {spin.id} is (queued|running)"):
        await pool.drop(spin.id)
    await pool.cancel(spin.id)

    dropped: list[TaskRecord] = []
    pool.subscribe(lambda record: dropped.append(record) if record.dropped else None)
    await pool.drop(first.id)
    assert first.id not in [r.id for r in pool.tasks()]
    assert dropped == [first]
    await pool.close()
    reopened = await started_pool(store_root, tmp_path / "tasks.sqlite", workers=1)
    try:
        assert first.id not in [r.id for r in reopened.tasks()]
        assert again.id in [r.id for r in reopened.tasks()]
    finally:
        await reopened.close()
