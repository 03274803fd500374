"""Issue 14, the broker's side: every task input is bounded and checked, a task's failure stays
with that task, memory is counted in bytes. One test per finding, each doing the attack against
a real `berth broker serve` and real `berth provider` processes (and, where the attacker is a
provider, a hand-made one speaking the protocol): the refusal or bound, then that the provider
still runs other clients' tasks, that no other client's result is lost, and that nothing is left
behind (no task open, no bytes held, no sandbox folder, no stored file)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from broker_helpers import Broker, Procs, http, start_paired_provider, wait_for
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backends.broker import keys
from backends.broker import protocol as p

BYSTANDER = {"X-Berth-Client": "bystander"}
MALLORY = {"X-Berth-Client": "mallory"}
MiB = 1024 * 1024


def _b64(size: int) -> str:
    """`size` bytes as a JSON task field carries them."""
    return base64.b64encode(b"x" * size).decode()


def _post(broker: Broker, path: str, body: Any, client: dict[str, str] = MALLORY) -> tuple[int, Any]:
    return http(broker.url + path, "POST", body, headers=client)


def _refused(broker: Broker, task: Any, status: int = 400) -> str:
    """Submit `task` as mallory; the error message of the refusal (which must be `status`)."""
    code, body = _post(broker, "/api/v1/tasks", task)
    assert code == status, (task if len(json.dumps(task)) < 300 else "(big task)", code, body)
    return str(body["error"])


def _bystander_runs(broker: Broker, wasm_programs: dict[str, Path], n: int = 3) -> list[dict[str, Any]]:
    """Another client's tasks, submitted while the attack goes on: their results, all complete."""
    ref = broker.upload(wasm_programs["echo"])
    tasks = [{"module": ref, "args": [f"n{i}"]} for i in range(n)]
    code, body = _post(broker, "/api/v1/tasks", tasks, BYSTANDER)
    assert code == 202, body
    return [broker.wait_task(task_id) for task_id in body["ids"]]


def _all_ran(views: list[dict[str, Any]]) -> None:
    for i, view in enumerate(views):
        assert (view["state"], view["kind"], view["exit_code"], view["client"]) == (
            "done", "exit", 0, "bystander"
        ), view  # fmt: skip
        assert f"arg 1: n{i}" in view["stdout"], view


def _sandboxes() -> list[Path]:
    """What the providers of this test left in their sandbox folder (under the test's XDG data)."""
    root = Path(os.environ["XDG_DATA_HOME"]) / "berth" / "provider-modules" / "sandboxes"
    return sorted(root.iterdir()) if root.is_dir() else []


def _nothing_left(broker: Broker) -> None:
    """No task open, no bytes held for one, no file kept for one, no sandbox folder."""
    wait_for(lambda: _idle(broker), 15, "the broker to have nothing open")
    with sqlite3.connect(f"file:{broker.data / 'broker.sqlite'}?mode=ro", uri=True) as db:
        assert db.execute("SELECT COUNT(*) FROM files").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM task_files").fetchone() == (0,)
        open_tasks = db.execute("SELECT COUNT(*) FROM tasks WHERE state IN ('queued', 'running')")
        assert open_tasks.fetchone() == (0,)
    assert _sandboxes() == []


def _idle(broker: Broker) -> bool:
    status = broker.get("/api/v1/status")
    return status["queued"] == status["running"] == status.get("in_flight", 0) == status["held_bytes"] == 0


def _running(broker: Broker, task_id: str) -> dict[str, Any] | None:
    view: dict[str, Any] = broker.get(f"/api/v1/tasks/{task_id}")
    return view if view["state"] == "running" else None


def _stored_tasks(broker: Broker, client: str) -> int:
    with sqlite3.connect(f"file:{broker.data / 'broker.sqlite'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM tasks WHERE client = ?", (client,)).fetchone()[0])


# A hand-made provider ------------------------------------------------------------------------


class FakeProvider:
    """A provider speaking the protocol by hand over aiohttp, so a test can claim and answer
    anything a real one would not."""

    def __init__(self, broker: Broker, workers: int) -> None:
        self.broker = broker
        self.url = broker.url + "/api/v1/provider"
        self.key = Ed25519PrivateKey.generate()
        self.public = keys.public_bytes(self.key)
        self.fingerprint = keys.fingerprint(self.public)
        self.workers = workers

    async def _hello(self, ws: aiohttp.ClientWebSocketResponse) -> Any:
        await ws.send_str(p.encode(p.Hello(self.public, "fake", "0", self.workers, "here")).decode())
        challenge = await _receive(ws)
        assert isinstance(challenge, p.Challenge), challenge
        signature = keys.sign(self.key, p.AUTH_CONTEXT + challenge.nonce)
        await ws.send_str(p.encode(p.Auth(signature)).decode())
        return await _receive(ws)

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        """Ask to join, get paired (over the API), connect again: the admitted connection."""
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.url) as ws:
                assert isinstance(await self._hello(ws), p.Refused)
            await asyncio.to_thread(self.broker.pair, self.fingerprint, "fake")
            async with session.ws_connect(self.url, max_msg_size=0) as ws:
                assert isinstance(await self._hello(ws), p.Welcome)
                yield ws


async def _receive(ws: aiohttp.ClientWebSocketResponse) -> Any:
    while True:
        message = await ws.receive(timeout=30)
        if message.type == aiohttp.WSMsgType.TEXT:
            return p.decode(message.data, p.FROM_BROKER)
        assert message.type == aiohttp.WSMsgType.BINARY, message  # a module: the fake needs none


async def _jobs(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[p.Job]:
    """The next `count` jobs the broker hands over."""
    jobs: list[p.Job] = []
    while len(jobs) < count:
        message = await _receive(ws)
        if isinstance(message, p.Run):
            jobs += message.jobs
    return jobs


def _result(job: p.Job, **fields: Any) -> dict[str, Any]:
    return {"id": job.id, "attempt": job.attempt, "kind": "exit", "exit_code": 0, **fields}


# High 2: fuel -1 / 2^64 ----------------------------------------------------------------------


def test_fuel_out_of_range_is_refused_and_no_other_clients_result_is_lost(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker")
    start_paired_provider(procs, broker, "p1")
    hello = broker.upload(wasm_programs["hello"])
    bound = "this broker takes 1 to 1,000,000,000,000 (max_fuel)."
    for fuel in (-1, 0, 2**63, 2**64, 10**30):
        error = _refused(broker, {"module": hello, "limits": {"fuel": fuel}})
        assert error == f"limits.fuel: is {fuel:,}; {bound}", error
    # In a list the task is named by its place.
    error = _refused(broker, [{"module": hello}, {"module": hello, "limits": {"fuel": -1}}])
    assert error == f"tasks[1].limits.fuel: is -1; {bound}"
    assert _stored_tasks(broker, "mallory") == 0  # nothing of it was queued

    _all_ran(_bystander_runs(broker, wasm_programs, 5))
    (task_id,) = broker.submit([{"module": hello, "limits": {"fuel": 10**9}}])
    view = broker.wait_task(task_id)
    assert (view["kind"], view["exit_code"]) == ("exit", 0) and 0 < view["fuel_used"] < 10**9, view
    _nothing_left(broker)


async def test_a_result_the_store_cannot_keep_fails_its_own_task_and_the_batch_is_kept(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    """A provider sends fuel_used below -2^63 (what fuel -1 made a real one send) among good
    results in one `done` frame: that task fails with the reason, the others are saved."""
    broker = procs.broker(tmp_path / "broker")
    fake = FakeProvider(broker, workers=4)
    hello = await asyncio.to_thread(broker.upload, wasm_programs["hello"])
    async with fake.admitted() as ws:
        code, body = await asyncio.to_thread(
            _post, broker, "/api/v1/tasks", [{"module": hello, "args": [str(i)]} for i in range(4)], BYSTANDER
        )
        assert code == 202, body
        jobs = await _jobs(ws, 4)
        bad, *good = jobs
        outcomes = [_result(bad, fuel_used=-(2**70))] + [_result(j, stdout="b2sK", fuel_used=7) for j in good]
        await ws.send_str(json.dumps({"command": "done", "data": {"outcomes": outcomes}}))
        views = {j.id: await asyncio.to_thread(broker.wait_task, j.id, 10) for j in jobs}
    failed = views[bad.id]
    assert failed["kind"] == "error" and failed["state"] in ("done", "failed"), failed
    assert failed["message"].startswith("the provider sent a result the broker cannot use: ")
    assert "fuel_used" in failed["message"]
    for job in good:
        view = views[job.id]
        assert (view["state"], view["kind"], view["stdout"], view["fuel_used"]) == ("done", "exit", "ok\n", 7)
    # A real provider joins and runs the next client's tasks.
    await asyncio.to_thread(start_paired_provider, procs, broker, "p1")
    _all_ran(await asyncio.to_thread(_bystander_runs, broker, wasm_programs))
    await asyncio.to_thread(_nothing_left, broker)


# High 3: Wasimoff loadfs ---------------------------------------------------------------------


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _database_bytes(data: Path) -> int:
    return sum(f.stat().st_size for f in data.glob("broker.sqlite*"))


def test_a_loadfs_file_listed_by_many_exec_entries_is_kept_once(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker")
    start_paired_provider(procs, broker, "p1")
    big = os.urandom(8 * MiB)
    upload = broker.url + "/api/broker/v1/upload?name="
    assert http(upload + "trivial.wasm", "POST", data=wasm_programs["trivial"].read_bytes())[0] == 200
    assert http(upload + "big.bin", "POST", data=big)[0] == 200
    assert broker.proc is not None
    rss, disk = _peak_rss(broker.proc.pid), _database_bytes(broker.data)

    entries = [{"args": [str(i)], "loadfs": ["big.bin"]} for i in range(30)]
    run = {"bin": "trivial.wasm", "exec": entries}
    status, results = http(broker.url + "/api/broker/v1/run", "POST", run)
    assert status == 200 and len(results) == 30, results
    assert all(r == {"result": {"status": 0, "stdout": "", "stderr": ""}} for r in results), results[:2]

    # A request of under 1 KB: the file is stored once and held once (before: +366 MB of memory
    # and +442 MB of database, one copy per entry), and the run's own copies to the provider go
    # a few at a time.
    grown_disk, grown_rss = _database_bytes(broker.data) - disk, _peak_rss(broker.proc.pid) - rss
    assert grown_disk < 3 * len(big), f"the database grew {grown_disk:,} bytes"
    assert grown_rss < 100 * MiB, f"the broker's peak memory grew {grown_rss:,} bytes"
    _all_ran(_bystander_runs(broker, wasm_programs))
    _nothing_left(broker)


# Medium: bytes, not counts -------------------------------------------------------------------


def test_the_queue_has_a_byte_budget_413_for_a_request_past_it_429_while_it_is_full(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker", None, "--queue-bytes", "4MiB")
    start_paired_provider(procs, broker, "p1")
    loop, cat = broker.upload(wasm_programs["loop"]), broker.upload(wasm_programs["cat"])
    error = _refused(broker, [{"module": cat, "stdin": _b64(3 * MiB)}] * 2, 413)
    assert error == (
        "These tasks hold 6,291,456 bytes (stdin, files, arguments); the queue of this broker holds "
        "at most 4,194,304 (queue_bytes)."
    ), error

    holding = {"module": loop, "stdin": _b64(3 * MiB), "limits": {"timeout": 60}}
    code, body = _post(broker, "/api/v1/tasks", holding)
    assert code == 202, body
    (holder,) = body["ids"]
    assert broker.get("/api/v1/status")["held_bytes"] == 3 * MiB
    assert f"berth_broker_held_bytes {3 * MiB}\n" in http(broker.url + "/metrics")[1]
    error = _refused(broker, {"module": cat, "stdin": _b64(2 * MiB)}, 429)
    assert error == (
        "The queue's byte budget is full: the tasks waiting or running hold 3,145,728 of 4,194,304 "
        "bytes (queue_bytes), and these need 2,097,152 more."
    ), error

    assert http(f"{broker.url}/api/v1/tasks/{holder}", "DELETE", headers=MALLORY)[0] == 200
    assert broker.wait_task(holder)["state"] == "cancelled"
    echoed = {"module": cat, "stdin": _b64(2 * MiB), "limits": {"max_output": 2 * MiB}}
    code, body = _post(broker, "/api/v1/tasks", echoed)
    assert code == 202, body
    view = broker.wait_task(body["ids"][0])
    assert (view["kind"], len(view["stdout"])) == ("exit", 2 * MiB), view["message"]
    _all_ran(_bystander_runs(broker, wasm_programs))
    _nothing_left(broker)


def test_finished_tasks_are_purged_past_their_count_and_their_time(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker", None, "--keep-finished", "4s", "--keep-finished-count", "5")
    start_paired_provider(procs, broker, "p1")
    views = _bystander_runs(broker, wasm_programs, 8)
    ids = [v["id"] for v in views]

    def listed() -> list[str]:
        return [t["id"] for t in broker.get("/api/v1/tasks")["tasks"]]

    # Past the count: the oldest three go within a second or so; the newest five stay a while.
    wait_for(lambda: listed() == ids[:2:-1], 5, "the oldest finished tasks to be purged")
    assert http(f"{broker.url}/api/v1/tasks/{ids[0]}")[0] == 404
    assert broker.get(f"/api/v1/tasks/{ids[-1]}")["stdout"]
    # Past their time: all of them.
    wait_for(lambda: listed() == [], 10, "every finished task to be purged")
    assert _stored_tasks(broker, "bystander") == 0
    assert broker.get("/api/v1/status")["purged"] == 8
    _all_ran(_bystander_runs(broker, wasm_programs))  # and tasks still run
    _nothing_left(broker)


def test_task_lists_come_without_payloads_and_in_pages(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker")
    start_paired_provider(procs, broker, "p1")
    cat = broker.upload(wasm_programs["cat"])
    big = {"module": cat, "stdin": _b64(768 * 1024), "files": {"in.bin": _b64(MiB)}}  # printed back
    code, body = _post(broker, "/api/v1/tasks", [big] * 12)
    assert code == 202, body
    ids = body["ids"]
    for task_id in ids:
        assert len(broker.wait_task(task_id)["stdout"]) == 768 * 1024

    seen, cursor, pages = [], None, 0
    while True:
        page = broker.get("/api/v1/tasks?limit=5" + (f"&cursor={cursor}" if cursor else ""))
        pages += 1
        for task in page["tasks"]:
            assert not {"stdout", "stderr", "datafile", "stdin", "files"} & set(task), task
            assert (task["state"], task["kind"], task["exit_code"]) == ("done", "exit", 0), task
        seen += [t["id"] for t in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert (pages, seen) == (3, ids[::-1])  # newest first, each once
    assert broker.get("/api/v1/tasks?state=queued") == {"tasks": [], "next_cursor": None}
    status, body = http(broker.url + "/api/v1/tasks?limit=10000")
    assert (status, body["error"]) == (400, "limit must be between 1 and 1000."), body
    status, body = http(broker.url + "/api/v1/tasks?cursor=x")
    assert (status, body["error"]) == (400, "cursor='x' is not a number."), body
    started = time.monotonic()
    assert len(broker.get("/api/v1/tasks?limit=1000")["tasks"]) == 12
    assert time.monotonic() - started < 0.5
    _all_ran(_bystander_runs(broker, wasm_programs))
    _nothing_left(broker)


# Medium: limits on every task ----------------------------------------------------------------


def test_every_task_runs_under_default_limits_and_asks_for_no_more_than_the_bounds(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(
        tmp_path / "broker", None,
        "--default-memory", "16MiB", "--default-timeout", "2s", "--max-timeout", "10m",
    )  # fmt: skip
    start_paired_provider(procs, broker, "p1")
    loop, bomb = broker.upload(wasm_programs["loop"]), broker.upload(wasm_programs["membomb"])
    error = _refused(broker, {"module": loop, "limits": {"timeout": 1e300}})
    assert error == (
        "limits.timeout: is 1e+300 s; this broker takes more than 0 and at most 600 s (max_timeout)."
    )
    for timeout in (0, -5):
        error = _refused(broker, {"module": loop, "limits": {"timeout": timeout}})
        assert error.startswith(f"limits.timeout: is {timeout:g} s; "), error
    error = _refused(broker, {"module": bomb, "limits": {"memory": 2**40}})
    assert error == (
        "limits.memory: is 1,099,511,627,776 bytes; this broker takes 1 to 2,147,483,648 bytes (max_memory)."
    )

    # No limits given: the memory bomb stops at 16 MiB, the endless loop after 2 s, and while the
    # loop runs its view says when the broker gives up on it.
    code, body = _post(broker, "/api/v1/tasks", [{"module": loop}, {"module": bomb}])
    assert code == 202, body
    spin, boom = body["ids"]
    running = wait_for(lambda: _running(broker, spin), 10, "the loop to start")
    assert running["deadline"] is not None and 0 < running["deadline"] - time.time() <= 2 + 30
    spun, boomed = broker.wait_task(spin), broker.wait_task(boom)
    assert (spun["kind"], spun["message"]) == ("timeout", "timed out after 2 s"), spun
    assert boomed["kind"] == "out_of_memory" and "of its 16 MiB limit" in boomed["message"], boomed
    _all_ran(_bystander_runs(broker, wasm_programs))
    _nothing_left(broker)


def test_tasks_reloaded_at_start_run_under_the_bounds_of_the_broker_that_runs_them(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    data = tmp_path / "broker"
    first = procs.broker(data)
    loop = first.upload(wasm_programs["loop"])
    # No provider yet: it stays queued, asking for 3,000 s.
    code, body = _post(first, "/api/v1/tasks", {"module": loop, "limits": {"timeout": 3000}})
    assert code == 202, body
    assert first.proc is not None
    first.proc.kill()

    broker = procs.broker(data, None, "--max-timeout", "2s", "--default-timeout", "1s")
    start_paired_provider(procs, broker, "p1")
    view = broker.wait_task(body["ids"][0], 20)
    assert (view["kind"], view["message"]) == ("timeout", "timed out after 2 s"), view
    _all_ran(_bystander_runs(broker, wasm_programs))
    _nothing_left(broker)


def test_max_output_above_what_a_result_frame_carries_is_refused_and_output_at_the_cap_arrives(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker", None, "--max-output", "2MiB")
    provider = start_paired_provider(procs, broker, "p1")
    cat = broker.upload(wasm_programs["cat"])
    error = _refused(broker, {"module": cat, "limits": {"max_output": 100 * MiB}})
    assert error == (
        "limits.max_output: is 104,857,600 bytes; this broker takes 1 to 2,097,152 bytes (max_output)."
    )

    # Output up to the cap reaches the client whole.
    at_cap = {"module": cat, "stdin": _b64(2 * MiB), "limits": {"max_output": 2 * MiB}}
    code, body = _post(broker, "/api/v1/tasks", at_cap)
    assert code == 202, body
    view = broker.wait_task(body["ids"][0])
    assert (view["kind"], len(view["stdout"])) == ("exit", 2 * MiB), view["message"]
    assert provider.output().count("admitted by the broker") == 1  # it never lost its connection
    _all_ran(_bystander_runs(broker, wasm_programs))
    _nothing_left(broker)


async def test_a_provider_claiming_65536_workers_is_counted_with_the_cap(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker", None, "--max-provider-workers", "2")
    await asyncio.to_thread(start_paired_provider, procs, broker, "p1")
    fake = FakeProvider(broker, workers=p.MAX_WORKERS)
    async with fake.admitted() as ws:
        listed = await asyncio.to_thread(broker.get, "/api/v1/providers")
        assert {r["name"]: r["workers"] for r in listed} == {"p1": 1, "fake": 2}
        await ws.send_str(p.encode(p.Heartbeat(0, p.MAX_WORKERS)).decode())  # and again, later
        views = await asyncio.to_thread(_bystander_runs, broker, wasm_programs, 12)
        listed = await asyncio.to_thread(broker.get, "/api/v1/providers")
    assert {r["name"]: r["workers"] for r in listed} == {"p1": 1, "fake": 2}
    # The fake never answers: what it took goes back to the queue when it leaves, and the honest
    # provider runs every task (with 65,536 workers counted, the fake had taken all twelve).
    assert any(v["attempts"] == 1 for v in views)
    _all_ran(views)
    query = urllib.parse.urlencode({"fingerprint": fake.fingerprint})
    log = await asyncio.to_thread(broker.get, f"/api/v1/providers/log?{query}")
    assert any("claims 65,536 workers; counted as 2 (max_provider_workers)" in line for line in log), log
    await asyncio.to_thread(_nothing_left, broker)


# Medium: every input bounded ------------------------------------------------------------------


def test_arguments_environment_stdin_and_files_are_bounded_and_named_when_refused(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(
        tmp_path / "broker", None,
        "--max-args", "4", "--max-env", "2", "--max-argv-bytes", "1KiB", "--max-stdin", "1KiB",
        "--max-files", "3", "--max-file-name", "64", "--max-file-depth", "3", "--max-files-bytes", "2KiB",
    )  # fmt: skip
    start_paired_provider(procs, broker, "p1")
    echo = broker.upload(wasm_programs["echo"])

    def task(**fields: Any) -> dict[str, Any]:
        return {"module": echo, **fields}

    takes = "; this broker takes at most"
    outside = "leaves the task's folder; use a path like data/in.csv."
    cases = [
        (task(args=["a"] * 5), f"args: has 5 arguments{takes} 4 (max_args)."),
        (task(env={f"K{i}": "v" for i in range(3)}), f"env: has 3 variables{takes} 2 (max_env)."),
        (task(args=["x" * 600, "y" * 600]), "args[1]: brings the name, arguments and environment to 1,200 "
         f"bytes{takes} 1,024 together (max_argv_bytes)."),
        (task(env={"K": "v" * 2000}), f"env['K']: has 2,002 bytes{takes} 1,024 (max_argv_bytes)."),
        (task(args=["nul\0byte"]), "args[0]: holds a NUL character, which no program can be given."),
        (task(env={"A=B": "c"}), "env['A=B']: is no variable name (it is empty or holds '=')."),
        (task(env={"": "c"}), "env['']: is no variable name (it is empty or holds '=')."),
        (task(stdin=_b64(1500)), f"stdin: has 1,500 bytes{takes} 1,024 (max_stdin)."),
        (task(files={f"f{i}": "" for i in range(4)}), f"files: has 4 files{takes} 3 (max_files)."),
        (task(files={"a": _b64(1500), "b": _b64(1500)}),
         f"files: has 3,000 bytes together{takes} 2,048 (max_files_bytes)."),
        (task(files={"n" * 300: ""}), f"files[{'n' * 80!r}]: has 300 bytes{takes} 64 (max_file_name)."),
        (task(files={"a/b/c/d": ""}), f"files['a/b/c/d']: has 4 parts{takes} 3 (max_file_depth)."),
        (task(files={"../etc/passwd": ""}), f"files['../etc/passwd']: {outside}"),
        (task(files={"a": "", "a/b": ""}), "files['a']: is a file, and 'a/b' needs it to be a folder."),
        (task(files={"a/b": "", "/a/./b": ""}), "files['/a/./b']: names the same file as 'a/b'."),
        (task(datafile="../out"), f"datafile: {outside}"),
        (task(name="x" * 2000), f"name: has 2,000 bytes{takes} 1,024 (max_argv_bytes)."),
    ]  # fmt: skip
    for body, error in cases:
        assert _refused(broker, body) == error
    refusal = http(broker.url + "/api/v1/tasks", "POST", task(args=["a"] * 5))[1]
    assert refusal["hint"] == "Ask for less, or raise --max-args (BERTH_BROKER_MAX_ARGS) on the broker."
    assert _stored_tasks(broker, "mallory") == 0  # nothing of it was queued

    # Within every bound, files and all: it runs.
    files = {"in/a.txt": _b64(900), "in/b.txt": _b64(900), "c": ""}
    code, body = _post(broker, "/api/v1/tasks", task(args=["a", "b"], env={"K": "v"}, files=files), BYSTANDER)
    assert code == 202, body
    view = broker.wait_task(body["ids"][0])
    assert (view["kind"], view["exit_code"]) == ("exit", 0) and "env K=v" in view["stdout"], view
    _all_ran(_bystander_runs(broker, wasm_programs))
    _nothing_left(broker)
