"""One host's Docker engine: containers, images, compose projects, logs, stats, events, image moves.

Everything goes through the Engine API on the host's unix socket (a forwarded one for SSH hosts),
so the same code serves the TUI and the CLI, here and far away.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlencode

from backends.audit import audited
from backends.docker_calls import EngineCalls
from backends.docker_copy import CopyCalls
from backends.docker_disk import DiskCalls
from backends.docker_limits import LimitCalls
from backends.docker_logs import LogRequest, epoch_seconds, follow_logs, since_param
from backends.docker_models import ContainerChange, ContainerInfo, ImageInfo, StatsPoint
from backends.docker_networks import NetworkCalls
from backends.docker_pull import PullCalls
from backends.docker_run import RunCalls
from backends.docker_update import UpdateCalls
from backends.docker_volumes import VolumeCalls
from backends.engine_http import EngineHttp, json_filter
from backends.errors import BerthError, Conflict, Invalid, NotFound, Unreachable
from backends.hosts import HostSession
from backends.streams import LogLine

API_VERSION = "1.41"
# Events that change what the container list shows; the rest (exec_*, attach, top…) do not.
LIST_EVENTS = (
    "create", "start", "restart", "stop", "die", "kill", "pause", "unpause",
    "rename", "destroy", "health_status", "update", "oom",
)  # fmt: skip
HEALTH_CHECK_ENDED = "exec_die"
"""The event that ends each run of a container's health check (its command runs as an exec)."""
EVENT_BATCH_SECONDS = 0.1
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
ACTIONS = ("start", "stop", "restart", "pause", "unpause", "kill")
T = TypeVar("T")
S = TypeVar("S")


def short(ref: str) -> str:
    """A container or image reference as people read it: long hex ids cut to 12 characters."""
    bare = ref.removeprefix("sha256:")
    return bare[:12] if len(bare) == 64 and all(ch in "0123456789abcdef" for ch in bare) else ref


class DockerBackend(
    VolumeCalls, NetworkCalls, DiskCalls, PullCalls, UpdateCalls, RunCalls, CopyCalls, LimitCalls, EngineCalls
):
    """The Docker engine behind one unix socket, named after its host in every message.

    Containers, images, logs, stats and events are here; each other kind of call has its own
    module and class (the bases), all written against `EngineCalls`.
    """

    def __init__(self, host_name: str, socket_path: str) -> None:
        self.host_name = host_name
        self.socket_path = socket_path
        self.http = EngineHttp(socket_path, f"Docker on {host_name}", prefix=f"/v{API_VERSION}")
        self._prev_cpu: dict[str, tuple[int, int]] = {}

    @classmethod
    async def for_session(cls, session: HostSession) -> DockerBackend:
        """The backend for a host's session: its Docker socket, forwarded when the host is remote.

        Waits for an SSH host's first connection; raises its error when it cannot connect.
        """
        return cls(session.host.name, await session.socket("docker"))

    async def close(self) -> None:
        """Close connections."""
        await self.http.close()

    async def version(self) -> dict[str, Any]:
        """The engine's version object (`Version`, `ApiVersion`, …)."""
        result: dict[str, Any] = await self.http.get_json("/version", "asking its version")
        return result

    # Containers ------------------------------------------------------------------------------

    async def containers(self, all: bool = True, ids: Iterable[str] = ()) -> list[ContainerInfo]:
        """Containers (stopped ones too unless `all=False`); only `ids` when given. One request."""
        params: dict[str, str | int] = {"all": int(all)}
        wanted = list(ids)
        if wanted:
            params["filters"] = json_filter({"id": wanted})
        raw = await self.http.get_json("/containers/json", "listing containers", params)
        return [ContainerInfo.from_api(item) for item in raw]

    async def find(self, name_or_id: str) -> ContainerInfo:
        """One container by name, full id or id prefix."""
        for c in await self.containers():
            if name_or_id in (c.name, c.id) or (len(name_or_id) >= 4 and c.id.startswith(name_or_id)):
                return c
        raise NotFound(
            f"No container {name_or_id!r} on {self.host_name}.",
            "List them with `berth ps --all`.",
        )

    async def inspect(self, container: str) -> dict[str, Any]:
        """The full inspect object."""
        result: dict[str, Any] = await self.http.get_json(
            f"/containers/{container}/json", f"inspecting {short(container)}"
        )
        return result

    async def act(self, action: str, container: str, *, name: str) -> None:
        """start, stop, restart, pause, unpause or kill one container (`name`: its name, for the
        audit log, which records both: an id is what stays true, a name what people know)."""
        if action not in ACTIONS:
            raise Invalid(f"Unknown container action {action!r}.", f"Use one of {', '.join(ACTIONS)}.")
        with audited(self.host_name, f"container.{action}", [container], names=[name]):
            await self.http.post(f"/containers/{container}/{action}", f"{action} {short(container)}")

    async def remove(self, container: str, *, name: str, force: bool = False, volumes: bool = False) -> None:
        """Remove a container (its anonymous volumes too with `volumes`); `name` as for `act`."""
        params = {"force": int(force), "v": int(volumes)}
        audit_as = {"names": [name], "force": force, "volumes": volumes}
        with audited(self.host_name, "container.remove", [container], **audit_as):
            await self.http.delete(f"/containers/{container}", f"removing {short(container)}", params)

    async def rename(self, container: str, new_name: str, *, name: str) -> None:
        """Give a container (now called `name`) a new name."""
        with audited(self.host_name, "container.rename", [container], names=[name], new_name=new_name):
            await self.http.post(
                f"/containers/{container}/rename", f"renaming {short(container)}", {"name": new_name}
            )

    async def top(self, container: str) -> tuple[list[str], list[list[str]]]:
        """Processes in a running container: (column titles, rows)."""
        raw = await self.http.get_json(
            f"/containers/{container}/top", f"listing processes of {short(container)}"
        )
        return list(raw.get("Titles") or []), [list(p) for p in raw.get("Processes") or []]

    async def is_running(self, container: str) -> bool:
        """Whether the container runs (or is restarting) now."""
        state = (await self.inspect(container)).get("State", {})
        return bool(state.get("Running") or state.get("Restarting"))

    # Events and the live list ------------------------------------------------------------------

    async def events(
        self, since: float | None = None, *, container: str = "", actions: Iterable[str] = LIST_EVENTS
    ) -> AsyncIterator[dict[str, Any]]:
        """The engine's container events as they happen (ends when the stream breaks): those of
        `actions`, and only `container`'s when given (the engine filters them)."""
        wanted: dict[str, list[str]] = {"type": ["container"], "event": list(actions)}
        if container:
            wanted["container"] = [container]
        params: dict[str, str | int] = {"filters": json_filter(wanted)}
        if since is not None:
            params["since"] = f"{since:.9f}"
        async with self.http.request("GET", "/events", "watching events", params=params, stream=True) as resp:
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)

    async def watch(self, all: bool = True) -> AsyncIterator[ContainerChange]:
        """The container list, kept current by the event stream.

        First a full list, then only the containers named by events, fetched together in one
        request per burst (events within 0.1 s are coalesced). Each container listed carries when
        it started and finished, so its status can age on screen. When the engine goes away a
        change with `error` set is yielded; on reconnect, a full list again.
        """
        attempt = 0
        while True:
            try:
                started = time.time()
                listed = await self.containers(all)
                attempt = 0
                yield ContainerChange(True, {c.id: c for c in listed})
                # Their times (an inspect each) come while events already do: neither waits.
                touched: set[str] = set()
                events = _coalesce(self.events(since=started), EVENT_BATCH_SECONDS)
                async for item in _alongside(events, self._with_times(listed)):
                    if isinstance(item, tuple):  # the first list, timed (an event since brought newer)
                        yield ContainerChange(False, {c.id: c for c in item if c.id not in touched})
                        continue
                    touched.update(item)  # the ids an event named
                    fresh = {c.id: c for c in await self._with_times(await self.containers(all, item))}
                    yield ContainerChange(False, fresh, set(item) - set(fresh))
                raise self.http.unreachable(None)
            except Unreachable as exc:
                yield ContainerChange(False, error=str(exc))
                await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
                attempt += 1

    async def _with_times(
        self, containers: Iterable[ContainerInfo], concurrency: int = 8
    ) -> tuple[ContainerInfo, ...]:
        """`containers` with `started_at` and `finished_at` from inspecting each whose status
        tells an age (the list has neither time); one that went meanwhile keeps its listed status."""
        gate = asyncio.Semaphore(concurrency)

        async def one(container: ContainerInfo) -> ContainerInfo:
            if not container.ages:
                return container
            async with gate:
                try:
                    state = (await self.inspect(container.id)).get("State") or {}
                except BerthError:
                    return container
            return dataclasses.replace(
                container,
                started_at=epoch_seconds(state.get("StartedAt")),
                finished_at=epoch_seconds(state.get("FinishedAt")),
            )

        return tuple(await asyncio.gather(*(one(c) for c in containers)))

    # Logs --------------------------------------------------------------------------------------

    async def logs(
        self,
        container: str,
        *,
        follow: bool = False,
        since: str | None = None,
        tail: int | None = None,
        timestamps: bool = False,
        follow_restarts: bool = False,
    ) -> AsyncIterator[list[LogLine]]:
        """Batches of log lines; following survives broken streams and engine restarts.

        With `follow_restarts`, following goes on across the container's own stops and starts.
        """
        if since:
            try:
                since_param(since, time.time())
            except ValueError as exc:
                raise Invalid(
                    f"Not a time or duration: {since!r}.", "Use 30s, 10m, 2h, 1d or an RFC 3339 time."
                ) from exc
        request = LogRequest(follow, since, tail, timestamps, follow_restarts)
        info = await self.inspect(container)
        tty = bool(info.get("Config", {}).get("Tty"))
        cid = info["Id"]
        running = functools.partial(self.is_running, cid)
        async for batch in follow_logs(self.http, cid, request, tty=tty, is_running=running, now=time.time):
            yield batch

    # Stats -------------------------------------------------------------------------------------

    async def stats(self, container: str) -> StatsPoint:
        """One stats sample; CPU % comes from the difference with this container's previous sample."""
        raw = await self.http.get_json(
            f"/containers/{container}/stats",
            f"reading stats of {short(container)}",
            {"stream": 0, "one-shot": 1},
        )
        cpu = raw.get("cpu_stats") or {}
        total = int((cpu.get("cpu_usage") or {}).get("total_usage", 0))
        system = int(cpu.get("system_cpu_usage", 0))
        cores = int(cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [1]))
        percent = None
        if prev := self._prev_cpu.get(container):
            d_total, d_system = total - prev[0], system - prev[1]
            if d_system > 0 and d_total >= 0:
                percent = d_total / d_system * cores * 100.0
        self._prev_cpu[container] = (total, system)
        mem = raw.get("memory_stats") or {}
        details = mem.get("stats") or {}
        # What `docker stats` shows: usage less the page cache (cgroup v2: inactive_file).
        cache = int(details.get("inactive_file", details.get("total_inactive_file", details.get("cache", 0))))
        nets = (raw.get("networks") or {}).values()
        return StatsPoint(
            cpu_percent=percent,
            memory=max(int(mem.get("usage", 0)) - cache, 0),
            memory_limit=int(mem.get("limit", 0)),
            net_rx=sum(int(n.get("rx_bytes", 0)) for n in nets),
            net_tx=sum(int(n.get("tx_bytes", 0)) for n in nets),
            at=time.time(),
        )

    async def stats_many(self, containers: Iterable[str], concurrency: int = 8) -> dict[str, StatsPoint]:
        """Samples for several running containers at once; those that fail are left out."""
        gate = asyncio.Semaphore(concurrency)

        async def one(cid: str) -> tuple[str, StatsPoint | None]:
            async with gate:
                try:
                    return cid, await self.stats(cid)
                except BerthError:  # stopped or removed meanwhile: no sample this round
                    return cid, None

        results = await asyncio.gather(*(one(c) for c in containers))
        return {cid: point for cid, point in results if point is not None}

    # Images ------------------------------------------------------------------------------------

    async def images(self) -> list[ImageInfo]:
        """Images, each with how many containers use it."""
        raw, containers = await asyncio.gather(
            self.http.get_json("/images/json", "listing images"),
            self.http.get_json("/containers/json", "listing containers", {"all": 1}),
        )
        used: dict[str, int] = {}
        for c in containers:
            used[c.get("ImageID", "")] = used.get(c.get("ImageID", ""), 0) + 1
        return [ImageInfo.from_api(item, used.get(item["Id"], 0)) for item in raw]

    async def inspect_image(self, image: str) -> dict[str, Any]:
        """The full inspect object of an image name or id."""
        result: dict[str, Any] = await self.http.get_json(
            f"/images/{image}/json", f"inspecting image {short(image)}"
        )
        return result

    async def image_id(self, image: str) -> str:
        """The full id of an image name or id."""
        return str((await self.inspect_image(image))["Id"])

    async def has_image(self, image_id: str, refs: Iterable[str]) -> bool:
        """Whether every one of `refs` (repo:tags or ids) names image `image_id` here."""
        for ref in refs:
            try:
                if await self.image_id(ref) != image_id:
                    return False
            except NotFound:
                return False
        return True

    async def remove_image(self, image: str, *, force: bool = False) -> None:
        """Remove an image (untag it if it has other tags)."""
        with audited(self.host_name, "image.remove", [image], force=force):
            await self.http.delete(
                f"/images/{image}", f"removing image {short(image)}", {"force": int(force)}
            )

    async def prune_images(self) -> tuple[int, int]:
        """Remove dangling images: (how many, bytes reclaimed)."""
        with audited(self.host_name, "image.prune", ["dangling"]):
            raw = await self.http.post(
                "/images/prune", "pruning images", {"filters": json_filter({"dangling": ["true"]})}
            )
        return len((raw or {}).get("ImagesDeleted") or []), int((raw or {}).get("SpaceReclaimed", 0))

    async def move_image(
        self, refs: list[str], target: DockerBackend, progress: Callable[[int, int], None] | None = None
    ) -> str:
        """Stream `docker save` of one image here into `docker load` on `target`; no temporary file.

        `refs` name the image: its repo:tags, which it then has on `target` too (an id alone
        arrives untagged, as `<none>`). `progress(bytes_sent, image_size)` is called as the tar
        streams. Returns the id on the target, which is the id here: the move keeps the image
        intact. A move to a host that already has it under every one of `refs` (the same engine
        under another name, say) is refused (`Conflict`) before anything is sent.
        """
        if not refs:
            raise Invalid("Name the image to move.", "Give its repo:tag or id.")
        with audited(self.host_name, "image.move", list(refs), to=target.host_name):
            return await self._move_image(refs, target, progress)

    async def _move_image(
        self, refs: list[str], target: DockerBackend, progress: Callable[[int, int], None] | None
    ) -> str:
        shown = ", ".join(short(r) for r in refs)
        inspected = await self.http.get_json(f"/images/{refs[0]}/json", f"inspecting image {short(refs[0])}")
        source_id, size = str(inspected["Id"]), int(inspected.get("Size", 0))
        if await target.has_image(source_id, refs):
            raise Conflict(
                f"{shown} is already on {target.host_name} (image {short(source_id)}): nothing was sent.",
                "Pick a host that lacks it (two inventory names may reach the same engine).",
            )
        sent = 0
        names = urlencode([("names", ref) for ref in refs])  # one name a tag: every tag goes along
        saving = self.http.request("GET", f"/images/get?{names}", f"saving {shown}", stream=True)

        async with saving as resp:

            async def body() -> AsyncIterator[bytes]:
                nonlocal sent
                async for chunk in resp.content.iter_chunked(1 << 20):
                    sent += len(chunk)
                    if progress is not None:
                        progress(sent, size)
                    yield chunk

            async with target.http.request(
                "POST",
                "/images/load",
                f"loading {shown}",
                params={"quiet": 1},
                data=body(),
                headers={"Content-Type": "application/x-tar"},
                stream=True,
            ) as loaded:
                answer = await loaded.read()
        for line in answer.splitlines():
            message = json.loads(line) if line.strip() else {}
            if message.get("error"):
                raise BerthError(
                    f"Docker on {target.host_name} could not load {shown}: {message['error']}.",
                    "Check free disk space on that host.",
                )
        target_id = await target.image_id(source_id)
        return target_id


async def _alongside(stream: AsyncIterator[T], side: Awaitable[S]) -> AsyncIterator[T | S]:
    """The items of `stream`, with the result of `side` slipped in as soon as it is ready; the
    stream is never held up by it. Ends with the stream (`side` is then cancelled if still due)."""
    later: asyncio.Future[S] | None = asyncio.ensure_future(side)
    items = aiter(stream)
    step: asyncio.Future[T] = asyncio.ensure_future(anext(items))
    try:
        while True:
            waiting: set[asyncio.Future[Any]] = {step} if later is None else {step, later}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if later is not None and later in done:
                yield later.result()
                later = None
            if step in done:
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                yield item
                step = asyncio.ensure_future(anext(items))
    finally:
        step.cancel()
        if later is not None:
            later.cancel()


async def _coalesce(events: AsyncIterator[dict[str, Any]], window: float) -> AsyncIterator[list[str]]:
    """Container ids named by events, gathered for `window` seconds after each first event."""
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in events:
                queue.put_nowait(event)
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(pump())
    try:
        while True:
            event = await queue.get()
            if event is None:
                break
            ids = {event.get("id") or event.get("Actor", {}).get("ID", "")}
            deadline = asyncio.get_running_loop().time() + window
            ended = False
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                try:
                    more = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    break
                if more is None:
                    ended = True
                    break
                ids.add(more.get("id") or more.get("Actor", {}).get("ID", ""))
            yield sorted(i for i in ids if i)
            if ended:
                break
        if task.done() and (exc := task.exception()):
            raise exc
    finally:
        task.cancel()
