"""The Docker backend against a real dockerd: list, act, watch, logs (with resume), stats, images, move."""

import asyncio
import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from engines.images import DOCKER_REPO, DOCKER_TAG, import_docker_busybox

from backends.audit import read_audit
from backends.compose import compose_command, run_compose
from backends.config import HostConfig
from backends.docker import DockerBackend
from backends.docker_logs import (
    BATCH_LINES,
    FrameDecoder,
    ResumePoint,
    _batches,
    since_param,
    since_value,
    timestamp_key,
)
from backends.docker_models import ContainerChange, group_projects
from backends.errors import Invalid, NotFound, Unreachable
from backends.hosts import HostSession
from backends.streams import LogLine

pytestmark = pytest.mark.engines


async def collect(backend: DockerBackend, name: str, **kwargs: object) -> list[LogLine]:
    lines: list[LogLine] = []
    async for batch in backend.logs(name, **kwargs):  # type: ignore[arg-type]
        lines.extend(batch)
    return lines


async def test_list_find_and_json(backend: DockerBackend, spawn: Spawn) -> None:
    running = spawn("sleep 600", labels={"com.docker.compose.project": "shop"})
    stopped = spawn("true")
    stopped.wait(timeout=30)
    everything = {c.id: c for c in await backend.containers()}
    assert everything[running.id].state == "running" and everything[stopped.id].state == "exited"
    assert everything[running.id].project == "shop"
    assert everything[running.id].rank < everything[stopped.id].rank
    assert stopped.id not in {c.id for c in await backend.containers(all=False)}
    found = await backend.find(running.name)
    assert found.id == running.id and (await backend.find(running.id[:10])).id == running.id
    assert found.to_json("local")["host"] == "local"
    with pytest.raises(NotFound, match="No container 'nope' on local"):
        await backend.find("nope")


async def test_actions_change_the_engine(
    backend: DockerBackend, spawn: Spawn, sdk: docker.DockerClient
) -> None:
    c = spawn("trap 'exit 0' TERM; while :; do sleep 0.1; done")
    await backend.act("pause", c.id, name=c.name)
    assert sdk.containers.get(c.id).status == "paused"
    await backend.act("unpause", c.id, name=c.name)
    await backend.act("stop", c.id, name=c.name)
    assert sdk.containers.get(c.id).status == "exited"
    await backend.act("start", c.id, name=c.name)
    assert sdk.containers.get(c.id).status == "running"
    started = sdk.containers.get(c.id).attrs["State"]["StartedAt"]
    await backend.act("restart", c.id, name=c.name)
    assert sdk.containers.get(c.id).attrs["State"]["StartedAt"] != started
    titles, procs = await backend.top(c.id)
    assert "PID" in titles and procs
    await backend.act("kill", c.id, name=c.name)
    # dockerd 20.10 cannot rename a running container that has no network ("sandbox not found").
    await backend.rename(c.id, c.name + "-renamed", name=c.name)
    assert sdk.containers.get(c.id).name == c.name + "-renamed"
    await backend.remove(c.id, name=c.name + "-renamed")
    with pytest.raises(docker.errors.NotFound):
        sdk.containers.get(c.id)
    with pytest.raises(NotFound, match="removing"):
        await backend.remove(c.id, name=c.name + "-renamed")
    with pytest.raises(Invalid):
        await backend.act("explode", "x", name="x")
    records = [(r["action"], r["outcome"][:6]) for r in read_audit() if c.id in r["targets"]]
    assert records[:2] == [("container.pause", "ok"), ("container.unpause", "ok")]
    assert records[-2:] == [("container.remove", "ok"), ("container.remove", "failed")]


COMPOSE_FILE = """
version: "2.4"
services:
  web:
    image: berth-test/busybox:latest
    command: ["sleep", "600"]
    network_mode: none
    stop_grace_period: 1s
  worker:
    image: berth-test/busybox:latest
    command: ["sh", "-c", "echo working; sleep 600"]
    network_mode: none
    stop_grace_period: 1s
"""


@pytest.mark.parametrize("where", ["local", "ssh"])
async def test_compose_projects_grouped_and_driven_through_the_cli(
    dockerd: DockerEngine,
    backend: DockerBackend,
    docker_busybox: str,
    tmp_path: Path,
    sdk: docker.DockerClient,
    request: pytest.FixtureRequest,
    where: str,
) -> None:
    """Compose runs on the host itself: here, or over the SSH connection (the same machine here)."""
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
    env = {**os.environ, "DOCKER_HOST": dockerd.url}
    if where == "ssh":
        host = request.getfixturevalue("ssh_host")(
            request.getfixturevalue("sshd"), docker_socket=str(dockerd.socket)
        )
    else:
        host = HostConfig("local", docker_socket=str(dockerd.socket))
    session = HostSession(host)
    compose = await compose_command(session)
    up = subprocess.run(
        [*compose, "-p", "shop", "up", "-d"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        projects = {p.name: p for p in group_projects(await backend.containers())}
        shop = projects["shop"]
        assert {c.service for c in shop.containers} == {"web", "worker"} and shop.running == 2
        assert shop.config_files == [str(tmp_path / "docker-compose.yml")]
        before = {c.id: sdk.containers.get(c.id).attrs["State"]["StartedAt"] for c in shop.containers}
        await run_compose(session, shop, "restart")
        after = {cid: sdk.containers.get(cid).attrs["State"]["StartedAt"] for cid in before}
        assert all(after[cid] != before[cid] for cid in before)
        await run_compose(session, shop, "down")
        assert not sdk.containers.list(all=True, filters={"label": "com.docker.compose.project=shop"})
        assert [r["action"] for r in read_audit()][-2:] == ["compose.restart", "compose.down"]
    finally:
        await session.close()
        subprocess.run([*compose, "-p", "shop", "down"], cwd=tmp_path, env=env, capture_output=True)


async def test_starting_a_running_container_is_fine_but_unpausing_is_a_conflict(
    backend: DockerBackend, spawn: Spawn
) -> None:
    c = spawn()
    await backend.act("start", c.id, name=c.name)  # the engine answers 304: nothing to do, no error
    with pytest.raises(Exception, match="not paused"):
        await backend.act("unpause", c.id, name=c.name)


async def test_watch_sees_changes_from_events_without_polling(
    backend: DockerBackend, spawn: Spawn, sdk: docker.DockerClient
) -> None:
    changes: asyncio.Queue[ContainerChange] = asyncio.Queue()

    async def pump() -> None:
        async for change in backend.watch():
            changes.put_nowait(change)

    task = asyncio.create_task(pump())
    try:
        first = await asyncio.wait_for(changes.get(), 10)
        assert first.full
        started = time.monotonic()
        c = spawn()
        while True:
            change = await asyncio.wait_for(changes.get(), 5)
            if c.id in change.upserts and change.upserts[c.id].state == "running":
                break
        assert time.monotonic() - started < 1.5  # includes the SDK's own create + start
        sdk.containers.get(c.id).remove(force=True)
        while c.id not in (await asyncio.wait_for(changes.get(), 5)).removed:
            pass
    finally:
        task.cancel()


async def test_logs_in_order_with_streams_marked(backend: DockerBackend, spawn: Spawn) -> None:
    c = spawn("seq 1 2000; echo oops >&2")
    c.wait(timeout=30)
    lines = await collect(backend, c.name)
    assert [line.text for line in lines if line.stream == "stdout"] == [str(i) for i in range(1, 2001)]
    assert [line.text for line in lines if line.stream == "stderr"] == ["oops"]
    assert all(line.timestamp is None for line in lines)
    tail = await collect(backend, c.name, tail=3, timestamps=True)
    # stdout and stderr are copied apart, so "oops" need not be last: compare with the engine's order.
    assert [line.text for line in tail] == [line.text for line in lines[-3:]]
    assert all(line.timestamp and line.timestamp.endswith("Z") for line in tail)
    with pytest.raises(Invalid, match="Not a time or duration"):
        await collect(backend, c.name, since="yesterday")
    assert len(await collect(backend, c.name, since="1h", tail=5)) == 5
    assert await collect(backend, c.name, since="2100-01-01T00:00:00Z") == []


async def test_tty_container_logs(backend: DockerBackend, spawn: Spawn) -> None:
    c = spawn("echo one; echo two", tty=True)
    c.wait(timeout=30)
    assert [line.text for line in await collect(backend, c.name)] == ["one", "two"]


async def test_follow_ends_when_the_container_stops(backend: DockerBackend, spawn: Spawn) -> None:
    c = spawn("for i in 1 2 3; do echo $i; sleep 0.2; done")
    lines = await asyncio.wait_for(collect(backend, c.id, follow=True), 20)
    assert [line.text for line in lines] == ["1", "2", "3"]


async def test_follow_survives_a_dockerd_restart_without_loss_or_doubling(
    dockerd: DockerEngine, backend: DockerBackend, spawn: Spawn, sdk: docker.DockerClient
) -> None:
    # restart=always: dockerd starts it again after its own restart, and it goes on writing.
    c = spawn("i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo line-$i; sleep 0.02; done; sleep 600",
              restart_policy={"Name": "always"})  # fmt: skip
    got: list[LogLine] = []

    async def follow() -> None:
        async for batch in backend.logs(c.id, follow=True, timestamps=True, follow_restarts=True):
            got.extend(batch)

    task = asyncio.create_task(follow())
    try:
        while sum(1 for line in got if line.stream == "stdout") < 50:
            await asyncio.sleep(0.02)
        await asyncio.to_thread(dockerd.restart)
        client = dockerd.client()
        try:
            deadline = time.monotonic() + 60
            while True:
                expected = client.containers.get(c.id).logs(timestamps=True).decode().splitlines()
                mine = [f"{line.timestamp} {line.text}" for line in got if line.stream == "stdout"]
                if len(mine) >= len(expected) and client.containers.get(c.id).status == "running":
                    await asyncio.sleep(0.5)
                    expected = client.containers.get(c.id).logs(timestamps=True).decode().splitlines()
                    mine = [f"{line.timestamp} {line.text}" for line in got if line.stream == "stdout"]
                    if mine == expected:
                        break
                assert time.monotonic() < deadline, f"{len(mine)} lines streamed, {len(expected)} logged"
                await asyncio.sleep(0.2)
        finally:
            client.close()
        # The break was noticed (engine gone, or the container stopped with it) and bridged.
        assert any(line.stream == "system" for line in got)
        assert len(set(mine)) == len(mine)
    finally:
        task.cancel()


async def test_follow_reconnects_when_the_engine_restarts_under_a_running_container(
    make_dockerd: Callable[..., DockerEngine],
) -> None:
    engine = make_dockerd("--live-restore")  # containers keep running while dockerd restarts
    client = engine.client()
    image = import_docker_busybox(client)
    script = "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo n-$i; sleep 0.02; done; sleep 600"
    c = client.containers.run(image, ["sh", "-c", script], detach=True)
    backend = DockerBackend("local", str(engine.socket))
    got: list[LogLine] = []

    async def follow() -> None:
        async for batch in backend.logs(c.id, follow=True):
            got.extend(batch)

    task = asyncio.create_task(follow())
    try:
        while len(got) < 30:
            await asyncio.sleep(0.02)
        await asyncio.to_thread(engine.restart)
        deadline = time.monotonic() + 60
        while [line.text for line in got if line.stream == "stdout"] != [f"n-{i}" for i in range(1, 301)]:
            assert time.monotonic() < deadline, f"got {len(got)} lines: {got[-3:]}"
            await asyncio.sleep(0.1)
        assert any("Reconnecting" in line.text for line in got if line.stream == "system")
    finally:
        task.cancel()
        await backend.close()
        client.close()


async def test_stats_sample_cpu_and_memory(backend: DockerBackend, spawn: Spawn) -> None:
    busy = spawn("while :; do :; done")
    first = await backend.stats(busy.id)
    assert first.cpu_percent is None and first.memory >= 0
    await asyncio.sleep(0.5)
    second = (await backend.stats_many([busy.id, "gone-container"]))[busy.id]
    assert second.cpu_percent is not None and second.cpu_percent > 20
    assert second.memory_limit > 0


async def test_images_prune_and_remove(
    backend: DockerBackend, sdk: docker.DockerClient, docker_busybox: str
) -> None:
    sdk.images.get(docker_busybox).tag("berth-test/extra", "v1")
    images = {i.id: i for i in await backend.images()}
    assert f"{DOCKER_REPO}:{DOCKER_TAG}" in images[docker_busybox].tags
    assert "berth-test/extra:v1" in images[docker_busybox].tags
    await backend.remove_image("berth-test/extra:v1")
    assert "berth-test/extra:v1" not in sdk.images.get(docker_busybox).tags
    count, _ = await backend.prune_images()
    assert count >= 0
    with pytest.raises(NotFound):
        await backend.remove_image("berth-test/none:v0")


async def test_move_image_to_another_engine(
    backend: DockerBackend, make_dockerd: Callable[..., DockerEngine], docker_busybox: str
) -> None:
    other = make_dockerd()
    target = DockerBackend("web-2", str(other.socket))
    seen: list[tuple[int, int]] = []
    try:
        moved = await backend.move_image(
            [f"{DOCKER_REPO}:{DOCKER_TAG}"], target, lambda a, b: seen.append((a, b))
        )
        assert moved == docker_busybox
        assert {i.id for i in await target.images()} == {docker_busybox}
        assert seen and seen[-1][0] > 0
    finally:
        await target.close()


async def test_an_engine_that_is_not_there_is_named(tmp_path: Path) -> None:
    nowhere = DockerBackend("web-9", str(tmp_path / "docker.sock"))
    try:
        with pytest.raises(Unreachable, match=r"Docker on web-9 does not answer at .*docker\.sock"):
            await nowhere.containers()
    finally:
        await nowhere.close()


# --- pure pieces ------------------------------------------------------------------------------


def test_timestamps_compare_and_convert() -> None:
    assert timestamp_key("2024-05-01T12:00:00.1Z") > timestamp_key("2024-05-01T12:00:00.099999999Z")
    assert since_value("1970-01-01T00:00:10.5Z") == "10.500000000"
    assert since_value("1970-01-01T01:00:10+01:00") == "10.000000000"
    assert since_param("10m", 1000.0) == "400.000000000"
    assert since_param("1h30m", 10_000.0) == "4600.000000000"
    assert since_param("1700000000", 0) == "1700000000"
    with pytest.raises(ValueError):
        since_param("soon", 0)


def test_resume_point_drops_exactly_what_was_delivered() -> None:
    resume = ResumePoint()
    for stamp in ("2024-01-01T00:00:01Z", "2024-01-01T00:00:02Z", "2024-01-01T00:00:02Z"):
        resume.seen(stamp)
    resume.arm()
    replay = ["2024-01-01T00:00:02Z", "2024-01-01T00:00:02Z", "2024-01-01T00:00:02Z", "2024-01-01T00:00:03Z"]
    assert [resume.already_delivered(s) for s in replay] == [True, True, False, False]


def test_frame_decoder_handles_split_frames_and_partial_lines() -> None:
    def frame(stream: int, payload: bytes) -> bytes:
        return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload

    data = frame(1, b"a\nb") + frame(2, b"err\n") + frame(1, b"c\n")
    decoder = FrameDecoder(tty=False)
    out = []
    for i in range(0, len(data), 3):  # worst case: three bytes at a time
        out += zip(*decoder.feed(data[i : i + 3]), strict=True)
    assert out == [("stdout", b"a"), ("stderr", b"err"), ("stdout", b"bc")]
    assert decoder.feed(frame(1, b"tail")) == ([], []) and decoder.flush() == (["stdout"], [b"tail"])


def _frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def _read_frame_by_frame(data: bytes, timestamps: bool) -> tuple[list[LogLine], str | None, int]:
    """What the stream says, read the plain way: a frame, then a line, at a time (and the resume point)."""
    names = {0: "stdin", 1: "stdout", 2: "stderr"}
    partial: dict[str, bytes] = {}
    raw: list[tuple[str, bytes]] = []
    pos = 0
    while pos + 8 <= len(data):
        name, size = names[data[pos]], int.from_bytes(data[pos + 4 : pos + 8], "big")
        *complete, rest = (partial.pop(name, b"") + data[pos + 8 : pos + 8 + size]).split(b"\n")
        pos += 8 + size
        raw += [(name, line) for line in complete]
        if rest:
            partial[name] = rest
    raw += [(name, rest) for name, rest in partial.items()]
    lines, last, count = [], None, 0
    for name, line in raw:
        text = line.decode("utf-8", "replace")
        stamp, sep, rest = text.partition(" ")
        if not sep or not stamp[:4].isdigit():
            lines.append(LogLine(text.rstrip("\r"), name))
            continue
        last, count = (stamp, count + 1) if stamp == last else (stamp, 1)
        lines.append(LogLine(rest.removesuffix("\r"), name, stamp if timestamps else None))
    return lines, last, count


def test_chunkwise_parsing_reads_what_a_frame_by_frame_reading_reads() -> None:
    # The parser takes whole chunks at once when every frame is one line; any other chunk must come
    # out as the plain reading gives it: partial and split lines, CRs, no stamps, bad UTF-8, stdin,
    # headers holding a newline byte (sizes 10 and 266), and chunks cut anywhere.
    rng = random.Random(3)
    stamps = ["2024-05-01T12:00:01.5Z", "2024-05-01T12:00:02Z", "2024-05-01T12:00:02Z"]

    def payload() -> bytes:
        kind = rng.randrange(10)
        text = rng.choice([b"hello world", "caf\u00e9 \u65e5\u672c".encode(), b"x" * rng.randrange(300), b""])
        if kind == 0:
            return text + b"\n"  # no stamp
        if kind == 1:
            return rng.choice(stamps).encode() + b" progress\r" + text + b"\r\n"
        if kind == 2:
            return b"\xff\xfe bad " + text + b"\n"
        if kind == 3:
            return rng.choice(stamps).encode() + b" " + text  # a line continued in the next frame
        if kind == 4:
            return b"2024-05-01T12:00:03Z 12345678\n"[: rng.choice([10, 30])]  # 10 bytes: size 10
        return rng.choice(stamps).encode() + b" " + text + b"\n"

    for round_ in range(300):
        whole = [_frame(rng.choice([1, 1, 1, 2, 0]), payload()) for _ in range(rng.randrange(1, 40))]
        if round_ % 3 == 0:
            whole.append(_frame(1, b"2024-05-01T12:00:04Z " + b"z" * 245 + b"\n"))  # size 266
        data = b"".join(whole)
        timestamps = bool(round_ % 2)
        expected, last, count = _read_frame_by_frame(data, timestamps)
        decoder, resume, got = FrameDecoder(tty=False), ResumePoint(), []
        cuts = sorted(rng.sample(range(len(data)), min(len(data), rng.choice([0, 1, 3, 20]))))
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            for batch in _batches(decoder.feed(data[start:end]), resume, timestamps):
                got += batch
        for batch in _batches(decoder.flush(), resume, timestamps):
            got += batch
        assert got == expected, f"round {round_}"
        assert (resume.stamp, resume.count) == (last, count), f"round {round_}"


def test_a_big_read_comes_out_in_small_batches() -> None:
    lines = BATCH_LINES * 3 + 5
    data = b"".join(_frame(1, f"2024-05-01T12:00:00.{i:09d}Z line {i}\n".encode()) for i in range(lines))
    resume = ResumePoint()
    batches = list(_batches(FrameDecoder(tty=False).feed(data), resume, False))
    assert [len(batch) for batch in batches] == [BATCH_LINES] * 3 + [5]
    assert batches[-1][-1] == LogLine(f"line {lines - 1}")
    assert (resume.stamp, resume.count) == (f"2024-05-01T12:00:00.{lines - 1:09d}Z", 1)
