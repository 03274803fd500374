"""The broker under load and across failures: 10,000 tasks on several providers, a provider
killed (-9) mid-task, the broker killed (-9) with thousands queued and restarted under a running
`berth submit`, and a provider drained with SIGTERM. Each result is recorded exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

from broker_helpers import Procs, new_key, start_paired_provider, wait_for
from cli_helpers import BERTH

from backends.broker import keys
from backends.broker.client import BrokerClient
from backends.broker.provider import Provider
from backends.broker.tasks import TaskRequest

TICKS = "".join(f"tick {i}\n" for i in range(10))
"""What tests/wasm/slow.c prints over its one second."""


def _tasks_table(data: Path) -> list[tuple[str, str, str | None, str]]:
    """(id, state, provider, batch) of every task in a broker's database."""
    with sqlite3.connect(f"file:{data / 'broker.sqlite'}?mode=ro", uri=True) as db:
        return db.execute("SELECT id, state, provider, batch FROM tasks ORDER BY seq").fetchall()


async def test_ten_thousand_tasks_on_four_providers_are_each_recorded_once(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker")
    for name in ("proc-1", "proc-2"):  # `berth provider` processes
        start_paired_provider(procs, broker, name)

    in_process = []  # Provider objects on this test's event loop
    for name in ("obj-1", "obj-2"):
        key = keys.load_or_create(tmp_path / f"{name}.key")
        provider = Provider(broker.url, 1, key, name, store=tmp_path / f"{name}-store")
        in_process.append((provider, asyncio.get_running_loop().create_task(provider.run())))
        await asyncio.to_thread(broker.pair, provider.fingerprint, name)
    try:
        for provider, _ in in_process:
            await asyncio.wait_for(provider.admitted.wait(), 30)
        assert sorted(p["name"] for p in await asyncio.to_thread(broker.get, "/api/v1/providers")) == [
            "obj-1", "obj-2", "proc-1", "proc-2",
        ]  # fmt: skip

        seen: Counter[str] = Counter()
        async with BrokerClient(broker.url) as client:
            ref = await client.upload(wasm_programs["trivial"].read_bytes(), "trivial.wasm")
            ids, batch = await client.submit([TaskRequest(ref)] * 10_000)
            async for result in client.results(batch):
                assert (result["state"], result["kind"], result["exit_code"]) == ("done", "exit", 0), result
                seen[result["id"]] += 1
        assert len(ids) == len(set(ids)) == 10_000
        assert set(seen) == set(ids) and set(seen.values()) == {1}

        rows = _tasks_table(broker.data)
        assert len(rows) == 10_000 and {r[0] for r in rows} == set(ids)
        assert Counter(r[1] for r in rows) == {"done": 10_000}
        by_provider = Counter(r[2] for r in rows)
        assert set(by_provider) == {"obj-1", "obj-2", "proc-1", "proc-2"}, by_provider
    finally:
        for provider, _ in in_process:
            provider.drain()
        for _, running in in_process:
            await asyncio.wait_for(running, 30)


def test_a_provider_killed_mid_task_has_its_tasks_finished_by_another(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker")
    doomed = start_paired_provider(procs, broker, "doomed")
    spare_key = tmp_path / "spare.key"
    spare_fingerprint = new_key(spare_key)
    procs.provider(broker.url, spare_key, "spare")  # waits, unpaired, until the kill

    slow = broker.upload(wasm_programs["slow"])
    ids = broker.submit([{"module": slow}] * 3)
    wait_for(
        lambda: broker.get(f"/api/v1/tasks/{ids[0]}")["provider"] == "doomed", 10, "the first task to start"
    )
    time.sleep(0.5)  # mid-task: the worker has printed a few ticks of its second
    on_doomed = [i for i in ids if broker.get(f"/api/v1/tasks/{i}")["provider"] == "doomed"]
    assert ids[0] in on_doomed
    doomed.kill()
    broker.pair(spare_fingerprint, "spare")

    for task_id in ids:
        view = broker.wait_task(task_id, 60)
        assert (view["state"], view["kind"], view["exit_code"], view["provider"]) == (
            "done",
            "exit",
            0,
            "spare",
        )
        assert view["stdout"] == TICKS  # a whole run's output, not the killed attempt's
        if task_id in on_doomed:
            assert view["attempts"] == 2, view
    assert [(r[1], r[2]) for r in _tasks_table(broker.data)] == [("done", "spare")] * 3
    log = broker.get("/api/v1/providers/log?fingerprint=" + _doomed_fingerprint(tmp_path))
    assert any("disconnected" in line for line in log), log


def _doomed_fingerprint(tmp_path: Path) -> str:
    from urllib.parse import quote

    return quote(keys.fingerprint(keys.public_bytes(keys.load_or_create(tmp_path / "doomed.key"))))


def test_broker_killed_with_thousands_queued_restarts_and_berth_submit_prints_each_result_once(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    count = 4000
    data = tmp_path / "broker"
    broker = procs.broker(data)
    for name in ("p1", "p2"):
        start_paired_provider(procs, broker, name)

    out = tmp_path / "submit.jsonl"
    with out.open("wb") as stdout, (tmp_path / "submit.err").open("wb") as stderr:
        command = ["--json", "submit", "--broker", broker.url, "--count", str(count)]
        submit = subprocess.Popen(
            [BERTH, *command, str(wasm_programs["trivial"])],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for(lambda: len(out.read_bytes().splitlines()) >= 100, 60, "the first results")
        assert broker.proc is not None
        broker.proc.kill()
        open_tasks = sum(1 for r in _tasks_table(data) if r[1] in ("queued", "running"))
        assert open_tasks >= 1000, f"only {open_tasks} tasks were left when the broker was killed"

        procs.broker(data, broker.port)  # the same folder and port; the providers find it again
        assert submit.wait(120) == 0, (tmp_path / "submit.err").read_text()[-2000:]
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.wait()

    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(results) == count
    ids = Counter(r["id"] for r in results)
    assert len(ids) == count and set(ids.values()) == {1}  # every result printed exactly once
    assert {(r["state"], r["kind"], r["exit_code"]) for r in results} == {("done", "exit", 0)}
    rows = _tasks_table(data)
    assert len(rows) == count and {r[0] for r in rows} == set(ids)  # none queued twice
    assert Counter(r[1] for r in rows) == {"done": count}
    assert len({r[3] for r in rows}) == 1


def test_a_provider_drained_with_sigterm_finishes_its_running_task_and_hands_back_the_rest(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker")
    leaving = start_paired_provider(procs, broker, "leaving")
    staying_key = tmp_path / "staying.key"
    staying_fingerprint = new_key(staying_key)
    procs.provider(broker.url, staying_key, "staying")

    slow = broker.upload(wasm_programs["slow"])
    first, *rest = broker.submit([{"module": slow}] * 3)
    wait_for(
        lambda: broker.get(f"/api/v1/tasks/{first}")["state"] == "running", 10, "the first task to start"
    )
    time.sleep(0.4)
    leaving.signal(signal.SIGTERM)
    assert leaving.popen.wait(10) == 0
    assert "draining" in leaving.output()
    # No wall-clock bound here (the machine may be busy): that it ran only its running task shows
    # in the others being queued again below, and run elsewhere as first attempts.

    view = broker.wait_task(first)
    assert (view["state"], view["exit_code"], view["provider"], view["stdout"]) == (
        "done",
        0,
        "leaving",
        TICKS,
    )
    assert all(broker.get(f"/api/v1/tasks/{i}")["state"] == "queued" for i in rest)  # handed back
    broker.pair(staying_fingerprint, "staying")
    for task_id in rest:
        view = broker.wait_task(task_id, 30)
        assert (view["state"], view["exit_code"], view["provider"], view["attempts"]) == (
            "done",
            0,
            "staying",
            1,
        )
    providers = {p["name"]: p["state"] for p in broker.get("/api/v1/providers")}
    assert providers == {"leaving": "offline", "staying": "online"}
