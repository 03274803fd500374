"""A task's failure stays with that task (issue 14, High 1), on a real `berth provider` process.

Most tests hand the provider its tasks through a broker stand-in written here: an aiohttp WebSocket
server speaking backends/broker/protocol.py, so a task the real broker would refuse at submit (a
file/folder clash, a 300-character name) still reaches the provider, which is what is under test.
Where the failure can be caused on the provider's side, a real `berth broker serve` is used too.
Each test checks that the bad task fails alone with its reason, that good tasks sent after it run
on the same connection with every worker slot free, that no sandbox folder is left, and that
SIGTERM still drains the provider (exit 0).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import pytest
from aiohttp import WSMsgType, web
from broker_helpers import Procs, free_port, new_key, start_paired_provider, wait_for

from backends.broker import keys
from backends.broker import protocol as p
from backends.broker.provider import default_store
from backends.wasm.blobs import ref_of

ONE_MIB = 1024 * 1024
"""The largest frame any broker takes from a provider (protocol.MIN_FRAME): the stand-in's limit
when its welcome names none (as a broker's from before `Welcome.max_frame` did not)."""
TICKS = b"".join(b"tick %d\n" % i for i in range(10))
"""What tests/wasm/slow.c prints over its one second."""


@dataclass
class StandIn:
    """A broker stand-in: admits any provider (or refuses every one), sends it the `Run`s a test
    makes, answers `need` with the module when it has it, and keeps what the provider sends."""

    modules: dict[str, bytes]
    max_frame: int | None = None
    """What its welcome says it takes (None: it says nothing, so only ONE_MIB is taken)."""
    refuse: bool = False
    heartbeat: float = 0.2
    hellos: list[float] = field(default_factory=list)
    """When each `hello` arrived (monotonic seconds)."""
    connections: int = 0
    """Connections admitted."""
    outcomes: dict[str, tuple[float, p.Outcome]] = field(default_factory=dict)
    heartbeats: list[p.Heartbeat] = field(default_factory=list)
    done_frames: list[int] = field(default_factory=list)
    """Sizes of the `done` frames received."""
    closed: list[str] = field(default_factory=list)
    """How each admitted connection ended."""
    ws: web.WebSocketResponse | None = None
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_get("/api/v1/provider", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Close the provider's connection (if still open) and stop listening."""
        if self.ws is not None:
            await self.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=self.max_frame or ONE_MIB, heartbeat=None)
        await ws.prepare(request)
        hello = p.decode((await ws.receive(timeout=10)).data, p.FROM_PROVIDER)
        self.hellos.append(time.monotonic())
        fingerprint = keys.fingerprint(hello.key)
        nonce = secrets.token_bytes(32)
        await ws.send_str(p.encode(p.Challenge(nonce, "stand-in")).decode())
        auth = p.decode((await ws.receive(timeout=10)).data, p.FROM_PROVIDER)
        assert keys.verify(hello.key, auth.signature, p.AUTH_CONTEXT + nonce)
        if self.refuse:
            await ws.send_str(p.encode(p.Refused("not paired", fingerprint)).decode())
            await ws.close()
            return ws
        welcome: dict[str, Any] = {
            "fingerprint": fingerprint,
            "name": hello.name,
            "heartbeat": self.heartbeat,
        }
        if self.max_frame is not None:
            welcome["max_frame"] = self.max_frame
        await ws.send_str(json.dumps({"command": "welcome", "data": welcome}))
        self.ws = ws
        self.connections += 1
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            got = p.decode(message.data, p.FROM_PROVIDER)
            if isinstance(got, p.Done):
                self.done_frames.append(len(message.data.encode()))
                for outcome in got.outcomes:
                    self.outcomes[outcome.id] = (time.monotonic(), outcome)
            elif isinstance(got, p.Need) and got.module in self.modules:
                await ws.send_bytes(p.module_frame(got.module, self.modules[got.module]))
            elif isinstance(got, p.Heartbeat):
                self.heartbeats.append(got)
        self.closed.append(f"{message.type.name} {ws.close_code} {ws.exception()}")
        self.ws = None
        return ws

    async def admitted(self, timeout: float = 30) -> None:
        """Wait until a provider is connected and admitted."""
        deadline = time.monotonic() + timeout
        while self.ws is None:
            assert time.monotonic() < deadline, "the provider never connected"
            await asyncio.sleep(0.02)

    async def run(self, *jobs: p.Job) -> None:
        """Hand jobs to the connected provider, in one `run` frame."""
        assert self.ws is not None, f"the provider is not connected (closed: {self.closed})"
        await self.ws.send_str(p.encode(p.Run(list(jobs))).decode())

    async def results(self, ids: list[str], timeout: float = 20) -> list[p.Outcome]:
        """The outcomes of these jobs once all arrived."""
        deadline = time.monotonic() + timeout
        while not all(i in self.outcomes for i in ids):
            missing = [i for i in ids if i not in self.outcomes]
            assert time.monotonic() < deadline, f"no result for {missing[:5]} (closed: {self.closed})"
            await asyncio.sleep(0.02)
        return [self.outcomes[i][1] for i in ids]

    async def idle_heartbeat(self, timeout: float = 10) -> p.Heartbeat:
        """The first heartbeat sent from now on."""
        seen = len(self.heartbeats)
        deadline = time.monotonic() + timeout
        while len(self.heartbeats) <= seen:
            assert time.monotonic() < deadline, "no heartbeat"
            await asyncio.sleep(0.02)
        return self.heartbeats[-1]


def job(module: bytes, *args: str, **fields: Any) -> p.Job:
    """A job of `module` (its bytes) with a fresh id, first attempt."""
    return p.Job("t-" + secrets.token_hex(8), 1, ref_of(module), list(args), **fields)


def sandboxes() -> list[Path]:
    """Task folders left in the provider's store."""
    folder = default_store() / "sandboxes"
    return sorted(folder.iterdir()) if folder.is_dir() else []


async def good_tasks_still_run(stand_in: StandIn, programs: dict[str, Path]) -> None:
    """An ordinary task runs; two slow ones on the two workers run at once (no slot was lost);
    then the provider says it is idle."""
    later = job(programs["echo"].read_bytes(), "later")
    await stand_in.run(later)
    (ok,) = await stand_in.results([later.id])
    assert (ok.kind, ok.exit_code) == ("exit", 0), ok
    assert b"arg 1: later\n" in ok.stdout
    slow = programs["slow"].read_bytes()
    pair = [job(slow), job(slow)]
    await stand_in.run(*pair)
    outcomes = await stand_in.results([j.id for j in pair])
    assert [(o.kind, o.exit_code, o.stdout) for o in outcomes] == [("exit", 0, TICKS)] * 2
    first, second = sorted(stand_in.outcomes[j.id][0] for j in pair)
    assert second - first < 0.6, f"the slow tasks ran one after the other ({second - first:.2f} s apart)"
    beat = await stand_in.idle_heartbeat()
    assert (beat.busy, beat.workers) == (0, 2), beat


async def drains_on_sigterm(provider: Any, stand_in: StandIn, programs: dict[str, Path]) -> None:
    """SIGTERM while a task runs: that task is reported, then the provider exits 0."""
    slow = job(programs["slow"].read_bytes())
    await stand_in.run(slow)
    await asyncio.sleep(0.3)  # running by now
    code = await asyncio.to_thread(provider.stop, 15.0)
    assert code == 0, provider.output()[-3000:]
    (outcome,) = await stand_in.results([slow.id], timeout=1)
    assert (outcome.kind, outcome.exit_code, outcome.stdout) == ("exit", 0, TICKS)
    assert any(beat.draining for beat in stand_in.heartbeats)


@pytest.fixture
async def stand_in(wasm_programs: dict[str, Path]) -> Any:
    """A broker stand-in holding every test program (and one ref whose bytes lie)."""
    modules = {ref_of(path.read_bytes()): path.read_bytes() for path in wasm_programs.values()}
    modules[ref_of(b"the module asked for")] = b"other bytes"
    server = StandIn(modules)
    await server.start()
    yield server
    await server.stop()


def start_provider(procs: Procs, url: str) -> Any:
    """`berth provider --workers 2` for the broker at `url`."""
    return procs.provider(url, procs.root / "iso.key", "iso", workers=2)


BAD_TASKS: dict[str, tuple[dict[str, Any], str]] = {
    "file then folder": (
        {"files": {"a": b"1", "a/b": b"2"}},
        "the task's file 'a/b' clashes with another of its files: one name cannot be both",
    ),
    "folder then file": (
        {"files": {"d/e": b"1", "d": b"2"}},
        "the task's file 'd' clashes with another of its files",
    ),
    "a 300-character file name": (
        {"files": {"ok": b"1", "n" * 300: b"2"}},
        "the provider cannot write the task's file 'nnnnn",
    ),
    "a 300-character data file name": (
        {"datafile": "y" * 300},
        "the task ended (exited with code 0) but the provider cannot read its data file 'yyyy",
    ),
    "a module ref that is none": ({"module": "sha256:../../etc"}, "the provider cannot look up the module"),
    "a module that does not match its ref": (
        {"module": ref_of(b"the module asked for")},
        "the module the broker sent for it does not match its ref",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TASKS))
async def test_a_bad_task_fails_alone_and_the_provider_runs_on(
    case: str, procs: Procs, stand_in: StandIn, wasm_programs: dict[str, Path]
) -> None:
    fields, message = BAD_TASKS[case]
    new_key(procs.root / "iso.key")
    provider = start_provider(procs, stand_in.url)
    await stand_in.admitted()
    echo = wasm_programs["echo"].read_bytes()
    before, after = job(echo, "before"), job(echo, "after")
    # Five: more than the old provider's three reconnects, and more than its four worker slots.
    bad = [msgspec.structs.replace(job(echo, "bad"), **fields) for _ in range(5)]
    await stand_in.run(before, *bad, after)

    outcomes = await stand_in.results([j.id for j in [before, *bad, after]])
    for outcome in outcomes[1:-1]:
        assert outcome.kind == "error" and outcome.message.startswith(message), outcome
    assert [(o.kind, o.exit_code) for o in (outcomes[0], outcomes[-1])] == [("exit", 0)] * 2
    assert b"arg 1: before\n" in outcomes[0].stdout and b"arg 1: after\n" in outcomes[-1].stdout
    assert sandboxes() == []

    await good_tasks_still_run(stand_in, wasm_programs)
    assert stand_in.connections == 1, stand_in.closed
    await drains_on_sigterm(provider, stand_in, wasm_programs)
    assert sandboxes() == []


async def test_results_handed_back_at_once_are_split_to_fit_the_frame_limit(
    procs: Procs, stand_in: StandIn, wasm_programs: dict[str, Path]
) -> None:
    # 20,000 tasks wait for a module the stand-in never sends; draining hands them all back in
    # one go: ~1.8 MB of `declined` results, more than the 1 MiB the stand-in takes in a frame.
    new_key(procs.root / "iso.key")
    provider = start_provider(procs, stand_in.url)
    await stand_in.admitted()
    waiting = [job(b"never sent") for _ in range(20_000)]
    await stand_in.run(*waiting)
    await asyncio.sleep(0.5)
    code = await asyncio.to_thread(provider.stop, 15.0)
    assert code == 0, provider.output()[-3000:]
    outcomes = await stand_in.results([j.id for j in waiting], timeout=5)
    assert {o.kind for o in outcomes} == {"declined"}
    assert len(stand_in.done_frames) >= 2 and max(stand_in.done_frames) <= ONE_MIB, stand_in.done_frames
    assert stand_in.connections == 1, stand_in.closed


async def test_an_output_too_large_for_one_frame_is_cut_to_fit(
    procs: Procs, stand_in: StandIn, wasm_programs: dict[str, Path]
) -> None:
    new_key(procs.root / "iso.key")
    provider = start_provider(procs, stand_in.url)
    await stand_in.admitted()
    spew = wasm_programs["spew"].read_bytes()
    big = job(spew, "1500000", limits=p.Limits(max_output=8 * ONE_MIB))
    await stand_in.run(big)
    (outcome,) = await stand_in.results([big.id])
    assert (outcome.kind, outcome.exit_code) == ("exit", 0), outcome.message
    assert 700_000 < len(outcome.stdout) < ONE_MIB and set(outcome.stdout) == {ord("x")}
    assert outcome.message == "exited with code 0 (output cut to fit the broker's frame limit)"
    assert max(stand_in.done_frames) <= ONE_MIB
    await good_tasks_still_run(stand_in, wasm_programs)
    assert stand_in.connections == 1, stand_in.closed
    await drains_on_sigterm(provider, stand_in, wasm_programs)


async def test_a_broker_that_takes_larger_frames_gets_the_whole_output(
    procs: Procs, stand_in: StandIn, wasm_programs: dict[str, Path]
) -> None:
    stand_in.max_frame = 4 * ONE_MIB
    new_key(procs.root / "iso.key")
    provider = start_provider(procs, stand_in.url)
    await stand_in.admitted()
    spew = wasm_programs["spew"].read_bytes()
    big = job(spew, "1500000", limits=p.Limits(max_output=8 * ONE_MIB))
    await stand_in.run(big)
    (outcome,) = await stand_in.results([big.id])
    assert (outcome.kind, outcome.exit_code, outcome.message) == ("exit", 0, "exited with code 0")
    assert outcome.stdout == b"x" * 1_500_000
    assert stand_in.connections == 1, stand_in.closed
    await drains_on_sigterm(provider, stand_in, wasm_programs)


async def test_a_refused_provider_asks_again_every_two_seconds(procs: Procs, stand_in: StandIn) -> None:
    stand_in.refuse = True
    new_key(procs.root / "iso.key")
    provider = start_provider(procs, stand_in.url)
    deadline = time.monotonic() + 15
    while len(stand_in.hellos) < 3:
        assert time.monotonic() < deadline, stand_in.hellos
        await asyncio.sleep(0.05)
    gaps = [b - a for a, b in zip(stand_in.hellos, stand_in.hellos[1:], strict=False)]
    assert all(1.9 <= gap <= 3.5 for gap in gaps), gaps  # 2 s, stretched by up to half for jitter
    assert await asyncio.to_thread(provider.stop, 10.0) == 0


def test_an_unpaired_provider_asks_a_real_broker_every_two_seconds(procs: Procs, tmp_path: Path) -> None:
    broker = procs.broker(tmp_path / "broker")
    fingerprint = new_key(tmp_path / "waiting.key")
    provider = procs.provider(broker.url, tmp_path / "waiting.key", "waiting")
    wait_for(lambda: broker.pending(fingerprint), 30, "the provider to ask to join")
    time.sleep(7.0)
    log = broker.get(f"/api/v1/providers/log?fingerprint={quote(fingerprint)}")
    asks = [line for line in log if "refused: not paired" in line]
    assert 2 <= len(asks) <= 5, log  # one at once, then one every 2-3 s
    broker.pair(fingerprint, "waiting")
    wait_for(lambda: broker.online("waiting"), 10, "the provider to be admitted once paired")
    assert provider.stop() == 0


# Through a real broker --------------------------------------------------------------------------


def _connections(broker: Any, fingerprint: str) -> int:
    log = broker.get(f"/api/v1/providers/log?fingerprint={quote(fingerprint)}")
    return sum(" connected from " in line for line in log)


def test_a_task_the_provider_cannot_prepare_fails_alone_through_a_real_broker(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    # The provider's disk refuses task folders (a file stands where they go): a task with files
    # fails with that reason, once; the others run, two at once on the two workers.
    (default_store() / "sandboxes").parent.mkdir(parents=True)
    (default_store() / "sandboxes").write_text("in the way")
    broker = procs.broker(tmp_path / "broker")
    provider = start_paired_provider(procs, broker, "iso", workers=2)
    fingerprint = broker.get("/api/v1/providers")[0]["fingerprint"]
    echo, slow = broker.upload(wasm_programs["echo"]), broker.upload(wasm_programs["slow"])
    bad = broker.submit([{"module": echo, "files": {"in.txt": "aGk="}}] * 3)
    good = broker.submit([{"module": slow}, {"module": slow}])
    for task in bad:
        view = broker.wait_task(task)
        assert (view["state"], view["kind"], view["attempts"]) == ("failed", "error", 1), view
        assert view["message"] == "the provider cannot make the task's folder: File exists"
    views = [broker.wait_task(task) for task in good]
    ended = [(v["state"], v["kind"], v["exit_code"], v["attempts"]) for v in views]
    assert ended == [("done", "exit", 0, 1)] * 2
    first, second = sorted(v["finished"] for v in views)
    assert second - first < 0.6, f"the slow tasks ran one after the other ({second - first:.2f} s apart)"
    assert _connections(broker, fingerprint) == 1
    assert (default_store() / "sandboxes").read_text() == "in the way"
    assert provider.stop(15.0) == 0
