"""The engine panes' Textual-free models on their own, against a real dockerd and LXD: a host feed
reaches its engine, delivers its events, says when the engine stopped, retries and comes back; a
polled feed reads only while its view wants it (or it is woken); the stats schedule samples
exactly the containers it is given."""

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import docker
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from engines.images import import_docker_busybox
from engines.lxd import LxdEngine, launch_busybox

from backends.config import HostConfig
from backends.docker import DockerBackend
from backends.docker_models import ContainerChange
from backends.hosts import HostSession
from tui.models.docker_feed import DockerFeed, DockerSource
from tui.models.host_feed import CONNECTING
from tui.models.lxd_feed import Instances, LxdFeed, LxdSource
from tui.models.stats_schedule import StatsSchedule, StatsTarget


def test_every_model_loads_without_textual_or_rich() -> None:
    # Models are what a view draws, testable with no screen: none may pull the UI in.
    code = (
        "import importlib, pkgutil, sys, tui.models as m\n"
        "names = [i.name for i in pkgutil.iter_modules(m.__path__, 'tui.models.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names), sorted(n for n in ('textual', 'rich') if n in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    count, _, loaded = done.stdout.strip().partition(" ")
    assert done.returncode == 0 and int(count) >= 4 and loaded == "[]", done.stdout + done.stderr


class Seen:
    """What a feed told its view, in order: each update, and `offline` whenever it changed."""

    def __init__(self) -> None:
        self.updates: list[ContainerChange] = []
        self.states: list[str] = []
        self.containers: dict[str, str] = {}  # id -> state, as the updates brought them

    def update(self, _feed: DockerFeed, change: ContainerChange) -> None:
        self.updates.append(change)
        if change.full:
            self.containers = {}
        self.containers.update({cid: c.state for cid, c in change.upserts.items()})
        for cid in change.removed:
            self.containers.pop(cid, None)

    def state(self, feed: DockerFeed) -> None:
        self.states.append(feed.offline)


async def until(check: Callable[[], object], timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_feed(engine: DockerEngine, seen: Seen) -> AsyncIterator[DockerFeed]:
    feed = DockerFeed(
        HostSession(HostConfig("local", docker_socket=str(engine.socket))),
        DockerSource(),
        on_update=seen.update,
        on_state=seen.state,
    )
    task = asyncio.create_task(feed.run())
    try:
        yield feed
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await feed.close()


async def test_a_feed_connects_and_delivers_the_engines_events(
    dockerd: DockerEngine, spawn: Spawn, sdk: docker.DockerClient
) -> None:
    seen = Seen()
    async with running_feed(dockerd, seen) as feed:
        assert feed.offline == CONNECTING  # nothing read yet, not even an empty list
        await until(lambda: seen.updates, what="the first list")
        assert seen.updates[0].full and feed.backend is not None
        assert seen.states == [""] and feed.offline == "" and feed.updates == len(seen.updates)

        c = spawn()  # made and started behind the feed's back
        await until(lambda: seen.containers.get(c.id) == "running", what="the new container's events")
        sdk.containers.get(c.id).kill()
        await until(lambda: seen.containers.get(c.id) == "exited", what="its death")
        sdk.containers.get(c.id).remove()
        await until(lambda: c.id not in seen.containers, what="its removal")
        assert not any(u.full for u in seen.updates[1:])  # events, not lists read again
        assert seen.states == [""]  # never lost meanwhile


async def test_a_feed_says_its_engine_stopped_retries_and_comes_back(
    make_dockerd: Callable[..., DockerEngine],
) -> None:
    engine = make_dockerd()
    client = engine.client()
    seen = Seen()
    try:
        async with running_feed(engine, seen) as feed:
            await until(lambda: seen.updates, what="the first list")
            lists_before = sum(u.full for u in seen.updates)

            stopped = asyncio.create_task(asyncio.to_thread(engine.restart))
            await until(lambda: feed.error, 30, "the feed to say the engine is gone")
            assert "Docker on local" in feed.error and feed.offline == feed.error
            await stopped  # dockerd answers again
            await until(lambda: not feed.error, 30, "the feed to come back")
            assert sum(u.full for u in seen.updates) > lists_before  # read whole again once back
            assert seen.states[0] == "" and seen.states[-1] == ""
            assert any(state.startswith("Docker on local") for state in seen.states)

            # Back for real: what happens on the engine now arrives as before.
            image = await asyncio.to_thread(import_docker_busybox, client)
            made = await asyncio.to_thread(client.containers.create, image, ["true"], name="after-restart")
            await until(lambda: made.id in seen.containers, what="a container made after the restart")
            assert seen.containers[made.id] == "created"
    finally:
        client.close()


async def test_the_stats_schedule_samples_exactly_the_ids_it_is_given(
    dockerd: DockerEngine, spawn: Spawn, monkeypatch: Any
) -> None:
    containers = [spawn() for _ in range(3)]
    seen = Seen()
    async with running_feed(dockerd, seen) as feed:
        await until(lambda: feed.backend is not None and seen.updates, what="the backend")
        assert isinstance(feed.backend, DockerBackend)
        asked: list[list[str]] = []
        stats_many = feed.backend.stats_many

        async def recorded(ids: list[str], concurrency: int = 8) -> Any:
            asked.append(list(ids))
            return await stats_many(ids, concurrency)

        monkeypatch.setattr(feed.backend, "stats_many", recorded)  # the real call, its ids written down
        schedule = StatsSchedule(history=3, most=2)
        first, second, third = containers
        given = [StatsTarget(f"row-{c.name}", feed, c.id) for c in containers]

        sampled = await schedule.sample(given[:2])
        assert asked == [[first.id, second.id]]
        assert sampled == {f"row-{first.name}", f"row-{second.name}"} == set(schedule.history)
        assert schedule.last(f"row-{first.name}").memory > 0  # type: ignore[union-attr]

        # Never more than `most` in a round, in the order given; the history is bounded.
        rounds: list[set[str]] = []
        monkeypatch.setattr("tui.models.stats_schedule.STATS_SECONDS", 0.01)
        runner = asyncio.create_task(schedule.run(lambda: given[1:], rounds.append))
        await until(lambda: len(rounds) >= 4, what="four rounds")
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        assert all(ids == [second.id, third.id] for ids in asked[1:])
        assert all(keys == {f"row-{second.name}", f"row-{third.name}"} for keys in rounds)
        assert len(schedule.history[f"row-{second.name}"]) == 3

        # A container forgotten by the view (it went away) is not sampled into its history again.
        schedule.forget(f"row-{third.name}")
        assert await schedule.sample([given[0]]) == {f"row-{first.name}"}
        assert f"row-{third.name}" not in schedule.history


async def test_a_polled_feed_reads_only_when_wanted_or_woken_and_comes_back(
    lxd: LxdEngine, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(LxdSource, "every", 0.2)
    name = f"t-{uuid.uuid4().hex[:6]}"
    instance = await asyncio.to_thread(launch_busybox, lxd, name, False)
    socket = tmp_path / "lxd.sock"  # nothing listens there yet: an LXD that is not up
    host = HostConfig("local", docker_socket=str(tmp_path / "none.sock"), lxd_socket=str(socket))
    wanted = [False]
    reads: list[Instances] = []
    states: list[str] = []
    feed = LxdFeed(
        HostSession(host),
        LxdSource(),
        on_update=lambda _feed, instances: reads.append(instances),
        on_state=lambda f: states.append(f.offline),
        wanted=lambda: wanted[0],
    )
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.sleep(1.5)
        assert (reads, states, feed.backend) == ([], [], None)  # not wanted: not even reached

        feed.wake()  # an action asks for a read at once, shown or not
        await until(lambda: states, what="the read to fail")
        assert feed.error.startswith("No LXD socket at") and feed.offline == feed.error
        await asyncio.sleep(1.5)
        assert len(states) == 1 and not reads  # hidden again: no retry until wanted

        wanted[0] = True
        await asyncio.sleep(1.0)
        assert feed.error and not reads  # retried, still down, said once
        socket.symlink_to(lxd.socket)  # LXD is there now
        await until(lambda: reads, 10, "the first read once LXD is up")
        assert name in reads[0] and states[-1] == "" and not feed.error
        await until(lambda: len(reads) >= 4, 10, "reads every `every` seconds while wanted")

        wanted[0] = False
        await asyncio.sleep(0.5)  # a read under way may still land
        settled = len(reads)
        await asyncio.sleep(1.5)
        assert len(reads) == settled  # hidden: LXD is left alone
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await feed.close()
        await asyncio.to_thread(instance.delete, wait=True)
