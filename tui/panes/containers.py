"""The Containers pane: Docker containers and images of one host, or of every host at once.

Each host has a feed: its session, its Docker backend once the host is reachable, and its last
error. Rows are keyed by container id on one host and by `host/id` in the all-hosts view, where a
host column says where each row lives and actions go to the row's own host.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Label, Sparkline

from backends.compose import run_compose
from backends.config import Config, HostConfig
from backends.docker import DockerBackend, short
from backends.docker_models import (
    ComposeProject,
    ContainerChange,
    ContainerInfo,
    ImageInfo,
    StatsPoint,
    group_projects,
)
from backends.errors import BerthError
from backends.hosts import HostSession, Sessions
from backends.shells import container_shell
from backends.streams import LogLine
from tui.acting import permitted, run_action, run_in_terminal, run_job, shown, writable
from tui.format import human_bytes
from tui.jobs import Job
from tui.panes.container_rows import (
    CONTAINER_COLUMNS,
    HOST_COLUMN,
    IMAGE_COLUMNS,
    container_row,
    host_error_row,
    image_label,
    image_row,
    stats_cells,
    status_text,
)
from tui.screens.confirm import ConfirmScreen
from tui.screens.logs import LogScreen
from tui.screens.picker import PickerScreen
from tui.screens.top import TopScreen
from tui.verbs import action_views, bindings
from tui.widgets.resource_table import ResourceTable

STATS_SECONDS = 2.0
STATS_HISTORY = 60
STATS_MAX_ROWS = 60
STATUS_TICK = 60.0
"""Seconds between redraws of the STATUS ages, which say minutes at the finest (`table_age`)."""
PENDING_GRACE = 2.0
"""Seconds a row keeps saying "stopping…" after the engine answered, for its event to arrive (an
action with nothing to do, such as stopping a stopped container, brings none)."""
# What a row says while its action is under way, until the engine reports the new state.
PENDING_LABELS = {"stop": "stopping…", "start": "starting…", "restart": "restarting…"}
ACTION_VIEWS = action_views("containers")
"""Action name -> the one view (containers or images) its keys make sense on (tui.verbs says)."""


@dataclass
class Pending:
    """An action under way on one container: what its row says meanwhile, and its state before."""

    verb: str
    before: ContainerInfo

    @property
    def label(self) -> str:
        """What the STATE cell says meanwhile ("restarting…")."""
        return PENDING_LABELS[self.verb]

    def reached(self, now: ContainerInfo) -> bool:
        """Whether `now` is the state the action was waiting for."""
        if self.verb == "stop":
            return now.state not in ("running", "paused", "restarting")
        if self.verb == "start":
            return now.state == "running"
        # A restart is done when it runs with a new start time (unknown before: the engine's answer says).
        before = self.before.started_at
        return now.state == "running" and bool(before) and now.started_at != before


@dataclass
class HostFeed:
    """One host as the pane sees it: its session, its Docker once reached, and what went wrong."""

    host: HostConfig
    session: HostSession
    backend: DockerBackend | None = None
    error: str = ""


class ContainerStrip(Horizontal):
    """Under the table: the selected row in two lines, and its CPU and memory sparklines while
    there is a history to draw (a stopped container has none; an empty one would draw a false
    baseline). With no row selected it takes no room."""

    DEFAULT_CSS = """
    ContainerStrip {
        height: 2;
        background: $panel;

        &.-empty { display: none; }

        & > #strip-summary {
            width: 1fr;
            height: 2;
            padding: 0 1;
            text-wrap: nowrap;
            text-overflow: ellipsis;
        }
        & > #strip-summary.-wrap { text-wrap: wrap; }
        & > .spark { width: 22; height: 2; padding: 0 1 0 0; display: none; }
        & > .spark.-shown { display: block; }
    }
    """

    def compose(self) -> ComposeResult:
        """Summary, then two sparklines."""
        yield Label(id="strip-summary")
        with Vertical(classes="spark"):
            yield Label("CPU", id="cpu-label")
            yield Sparkline([], id="cpu-spark")
        with Vertical(classes="spark"):
            yield Label("MEM", id="mem-label")
            yield Sparkline([], id="mem-spark")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._said: dict[str, str] = {}  # label id -> the markup it shows

    def show(self, container: ContainerInfo | None, history: Sequence[StatsPoint], now: float) -> None:
        """Describe `container` (or nothing) with its stats history; its status aged to `now`."""
        if container is None:
            self.say("")
            return
        self.set_class(False, "-empty")
        self.query_one("#strip-summary").set_class(False, "-wrap")
        first = f"[b]{escape(container.name)}[/b]  ·  {escape(status_text(container, now))}"
        second = (container.short_id, short(container.image), container.ports)
        self._say("strip-summary", first + "\n" + "  ·  ".join(escape(bit) for bit in second if bit))
        self._show_sparks(len(history) >= 2)  # one point draws as a full bar: no trend yet
        if len(history) < 2:
            return
        self.query_one("#cpu-spark", Sparkline).data = [p.cpu_percent or 0.0 for p in history]
        self.query_one("#mem-spark", Sparkline).data = [float(p.memory) for p in history]
        last = history[-1]
        self._say("cpu-label", f"CPU {last.cpu_percent:.1f}%" if last.cpu_percent is not None else "CPU -")
        self._say("mem-label", f"MEM {human_bytes(last.memory)}")

    def say(self, text: str) -> None:
        """Show `text` (not markup) alone, over both lines (a host's error in full); none: no room."""
        self.set_class(not text, "-empty")
        self.query_one("#strip-summary").set_class(True, "-wrap")
        self._say("strip-summary", escape(text))
        self._show_sparks(False)

    def _show_sparks(self, shown: bool) -> None:
        for spark in self.query(".spark"):
            spark.set_class(shown, "-shown")

    def _say(self, label: str, markup: str) -> None:
        # Label.update lays out and redraws the whole screen even for the same text, and the strip is
        # told again after every stats sample (every ~2 s): only a new text is worth that.
        if self._said.get(label) != markup:
            self._said[label] = markup
            self.query_one(f"#{label}", Label).update(markup)


class ContainersPane(Widget):
    """Containers (default) or images of the current host; actions apply to the marked rows."""

    DEFAULT_CSS = """
    ContainersPane > ContentSwitcher { height: 1fr; }
    ContainersPane.-images > ContainerStrip { display: none; }
    """

    BINDINGS = bindings("containers")

    def __init__(
        self, hosts: Sequence[HostConfig], config: Config, sessions: Sessions, *, all_hosts: bool = False
    ) -> None:
        super().__init__(id="pane-containers", classes="pane containers")
        self.config = config
        self.hosts = list(hosts)
        self.all_hosts = all_hosts
        self.sessions = sessions
        self.feeds: dict[str, HostFeed] = {}
        self.containers: dict[str, ContainerInfo] = {}
        self.where: dict[str, str] = {}  # row key -> host name
        self.stats: dict[str, deque[StatsPoint]] = {}
        self.pending: dict[str, Pending] = {}  # row key -> the action under way there
        self.images: dict[str, ImageInfo] = {}  # row key -> image, as the images view last read them
        self.view = "containers"
        self.offline = ""
        self.changes_seen = 0

    @property
    def host(self) -> HostConfig:
        """The host on show (the first one in the all-hosts view)."""
        return self.hosts[0]

    @property
    def backend(self) -> DockerBackend | None:
        """The backend of the host on show, once reached."""
        feed = self.feeds.get(self.host.name)
        return feed.backend if feed else None

    def compose(self) -> ComposeResult:
        """The two tables (one on show) and the strip."""
        extra = (HOST_COLUMN,) if self.all_hosts else ()
        where = "any host" if self.all_hosts else self.host.name
        with ContentSwitcher(initial="containers-table"):
            # By name (not by the HOST column in front in the all-hosts view, under which a
            # host's own rows had no order while the arrow said they did).
            yield ResourceTable(
                (*extra, *CONTAINER_COLUMNS),
                id="containers-table",
                sort_column="name",
                group_label="compose: {group}",
                no_group_label="(no project)",
                empty_message="Connecting…",
            )
            yield ResourceTable(
                (*extra, *IMAGE_COLUMNS),
                sort_column="name",
                id="images-table",
                groupable=False,
                empty_message=f"No images on {where}.",
            )
        yield ContainerStrip(id="container-strip", classes="-empty")

    def on_mount(self) -> None:
        """Start a feed per host (they connect concurrently) and the stats sampler."""
        for host in self.hosts:
            feed = HostFeed(host, self.sessions.get(host))
            self.feeds[host.name] = feed
            self.watch_host(feed)
        self.sample_stats()
        self.age_statuses()

    async def on_unmount(self) -> None:
        """Close the connections to the engines."""
        self.workers.cancel_group(self, "docker")
        backends = [f.backend for f in self.feeds.values() if f.backend is not None]
        await asyncio.gather(*(b.close() for b in backends), return_exceptions=True)

    # Hosts and live data -----------------------------------------------------------------------

    @property
    def table(self) -> ResourceTable:
        """The containers table."""
        return self.query_one("#containers-table", ResourceTable)

    @property
    def images_table(self) -> ResourceTable:
        """The images table."""
        return self.query_one("#images-table", ResourceTable)

    def focus(self, scroll_visible: bool = True) -> ContainersPane:
        """Focus goes to the table on show."""
        current = self.table if self.view == "containers" else self.images_table
        current.focus(scroll_visible)
        return self

    def key(self, host: str, resource_id: str) -> str:
        """The row key of a container or image of `host`."""
        return f"{host}/{resource_id}" if self.all_hosts else resource_id

    @work(group="docker", exit_on_error=False)
    async def watch_host(self, feed: HostFeed) -> None:
        """Reach the host's Docker, then apply its changes as they come (events, coalesced)."""
        while feed.backend is None:
            version = feed.session.version
            try:
                feed.backend = await DockerBackend.for_session(feed.session)
            except BerthError as exc:
                self._host_error(feed, str(exc))
                await feed.session.changed(version)  # a reconnect, or the user trusting its key
        self.table.empty_message = f"No containers on {'any host' if self.all_hosts else feed.host.name}."
        async for change in feed.backend.watch():
            self.apply_change(feed, change)

    def apply_change(self, feed: HostFeed, change: ContainerChange) -> None:
        """Bring `feed`'s rows in line with `change`."""
        self.changes_seen += 1
        if change.error:
            session = feed.session
            why = change.error
            if not session.online:
                why = f"{feed.host.name} is {session.state}" + (
                    f": {session.error}" if session.error else "."
                )
            self._host_error(feed, why)
            return
        self._host_error(feed, "")
        name = feed.host.name
        if change.full:
            for key in [k for k, h in self.where.items() if h == name]:
                self._forget(key)
        for cid, container in change.upserts.items():
            key = self.key(name, cid)
            self.containers[key] = container
            self.where[key] = name
            pending = self.pending.get(key)
            if pending is not None and pending.reached(container):
                del self.pending[key]
        for cid in change.removed:
            self._forget(self.key(name, cid))
        self._redraw()

    def _forget(self, key: str) -> None:
        self.containers.pop(key, None)
        self.where.pop(key, None)
        self.stats.pop(key, None)
        self.pending.pop(key, None)

    def _host_error(self, feed: HostFeed, why: str) -> None:
        """Show (or clear) what keeps a host's rows from being current."""
        if feed.error == why:
            return
        feed.error = why
        if self.all_hosts:
            self._redraw()
            return
        self.offline = why
        self.set_class(bool(why), "-offline")
        if why:
            self.table.empty_message = why
        self.border_subtitle = why

    def _redraw(self) -> None:
        host_of = self.where.get if self.all_hosts else (lambda _key: None)
        now = time.time()
        labels = {key: pending.label for key, pending in self.pending.items()}
        rows = {
            key: container_row(c, self._last_stats(key), host_of(key), now=now, pending=labels.get(key))
            for key, c in self.containers.items()
        }
        if self.all_hosts:
            for name, feed in self.feeds.items():
                if feed.error:
                    rows[self.key(name, "!")] = host_error_row(name, feed.error)
        self.table.update_rows(rows)
        self._show_strip()

    def _last_stats(self, key: str) -> StatsPoint | None:
        history = self.stats.get(key)
        return history[-1] if history else None

    @work(group="docker", exit_on_error=False)
    async def sample_stats(self) -> None:
        """Sample the running containers on screen every 2 s (never all of them, never a stream each)."""
        while True:
            by_host: dict[str, list[str]] = {}
            for key in self._stats_targets():
                by_host.setdefault(self.where[key], []).append(key)
            sampled = await asyncio.gather(*(self._sample(name, keys) for name, keys in by_host.items()))
            # Rebuilding all rows costs ~5 ms with 300 of them; most samples of idle containers change
            # no figure on show, and then only the strip's history of the cursor row moves on.
            if any(shown for _came, shown in sampled):
                self._redraw()
            elif any(came for came, _shown in sampled):
                self._show_strip()
            await asyncio.sleep(STATS_SECONDS)

    async def _sample(self, host: str, keys: list[str]) -> tuple[bool, bool]:
        """One stats sample of `keys` on `host`: whether any point came back, and whether a CPU or
        MEM cell now reads differently.
        """
        backend = self.feeds[host].backend
        if backend is None:
            return False, False
        ids = {self.containers[k].id: k for k in keys if k in self.containers}
        try:
            points = await backend.stats_many(list(ids))
        except BerthError:
            return False, False
        changed = False
        for cid, point in points.items():
            key = ids.get(cid)
            container = self.containers.get(key) if key else None
            if key is None or container is None:  # gone while sampling
                continue
            before = stats_cells(container, self._last_stats(key))
            self.stats.setdefault(key, deque(maxlen=STATS_HISTORY)).append(point)
            changed = changed or stats_cells(container, point) != before
        return bool(points), changed

    @work(group="docker", exit_on_error=False)
    async def age_statuses(self) -> None:
        """Draw the STATUS ages again once a minute, with no event to say so (only the cells that
        changed are redrawn); not while the pane is out of sight."""
        while True:
            await asyncio.sleep(STATUS_TICK)
            if self.view == "containers" and shown(self):
                self._redraw()

    def _stats_targets(self) -> list[str]:
        """Running containers in the rows on screen now (plus the selected one)."""
        if self.view != "containers" or not shown(self):
            return []
        ids = self.table.visible_ids()
        grid = self.table.data_table
        # Display lines, not ids: group headings take lines too, so this may over-count by a few.
        # The header line is not a row (counting it sampled one container off screen every round).
        first = int(grid.scroll_offset.y)
        lines = grid.size.height - (grid.header_height if grid.show_header else 0)
        on_screen = ids[first : first + max(lines, 1)]
        cursor = self.table.cursor_id()
        if cursor and cursor not in on_screen:
            on_screen.append(cursor)
        running = [
            key for key in on_screen if key in self.containers and self.containers[key].state == "running"
        ]
        return running[:STATS_MAX_ROWS]

    def _show_strip(self) -> None:
        key = self.table.cursor_id()
        strip = self.query_one(ContainerStrip)
        if key and key.endswith("/!") and (feed := self.feeds.get(key[:-2])) and feed.error:
            strip.say(f"{feed.host.name}: {feed.error}")  # an error row shows the error in full here
            return
        container = self.containers.get(key) if key else None
        strip.show(container, list(self.stats.get(key or "", ())), time.time())

    @on(ResourceTable.CursorMoved, "#containers-table")
    def _cursor_moved(self) -> None:
        self._show_strip()

    # Targets, guards -------------------------------------------------------------------------------

    def targets(self) -> list[tuple[HostFeed, ContainerInfo]]:
        """The marked containers, else the one under the cursor (a project header: all its containers)."""
        return [
            (self.feeds[self.where[key]], self.containers[key])
            for key in self.table.selected_ids()
            if key in self.containers
        ]

    def _writable(self, feed: HostFeed) -> DockerBackend | None:
        """The backend to act through; None, with a notification saying why, when acting is not allowed."""
        why_not = feed.error or f"No Docker on {feed.host.name}."
        return writable(self, self.config, feed.host, feed.backend, why_not)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show each key only on the view it works on, and no verb that changes state read-only."""
        if not permitted(self, action, parameters):
            return False
        view = ACTION_VIEWS.get(action)
        return view is None or self.view == view

    def _run(self, label: str, job: Callable[[], Awaitable[object]]) -> None:
        """Run an engine call off the UI; failures become one notification."""
        run_action(self, label, job)

    # Container actions ---------------------------------------------------------------------------

    def action_act(self, verb: str) -> None:
        """stop / start on the targets."""
        self._each(verb, lambda backend, c: backend.act(verb, c.id, name=c.name))

    def _each(
        self,
        verb: str,
        call: Callable[[DockerBackend, ContainerInfo], Awaitable[None]],
        chosen: list[tuple[HostFeed, ContainerInfo]] | None = None,
    ) -> None:
        chosen = self.targets() if chosen is None else chosen
        backends: dict[str, DockerBackend] = {}
        for feed in {id(f): f for f, _c in chosen}.values():
            backend = self._writable(feed)
            if backend is None:
                return
            backends[feed.host.name] = backend
        if not chosen:
            return
        keys = [self.key(feed.host.name, c.id) for feed, c in chosen]
        if verb in PENDING_LABELS:
            self.pending.update({key: Pending(verb, c) for key, (_f, c) in zip(keys, chosen, strict=True)})
            self._redraw()

        async def job() -> None:
            failed = []
            for key, (feed, c) in zip(keys, chosen, strict=True):
                try:
                    await call(backends[feed.host.name], c)
                except BerthError as exc:
                    failed.append(f"{c.name}: {exc.message}")
                    self._settle(key, failed=True)
                else:
                    self._settle(key)
            if failed:
                raise BerthError("; ".join(failed))
            names = ", ".join(c.name for _f, c in chosen[:3]) + (
                f" and {len(chosen) - 3} more" if len(chosen) > 3 else ""
            )
            self.notify(f"{verb}: {names}", timeout=3)

        self._run(verb, job)

    def _settle(self, key: str, *, failed: bool = False) -> None:
        """The engine answered the action under way on row `key`: a failure ends the wait at once;
        otherwise the row waits for the engine's new state, or `PENDING_GRACE` at most."""
        pending = self.pending.get(key)
        if pending is None:
            return
        container = self.containers.get(key)
        if failed or container is None or pending.reached(container):
            del self.pending[key]
            self._redraw()
            return

        def give_up() -> None:
            if self.pending.get(key) is pending:
                del self.pending[key]
                self._redraw()

        self.set_timer(PENDING_GRACE, give_up)

    def action_restart(self) -> None:
        """Restart the targets; on a project header, the project through compose."""
        if self.table.cursor_group() and not self.table.marked_ids():
            self.action_compose("restart")
            return
        self._each("restart", lambda backend, c: backend.act("restart", c.id, name=c.name))

    def action_pause(self) -> None:
        """Pause running targets, unpause paused ones."""
        self._each(
            "pause/unpause",
            lambda backend, c: backend.act("unpause" if c.state == "paused" else "pause", c.id, name=c.name),
        )

    def action_remove(self) -> None:
        """Remove the targets, after asking (naming them); optionally their volumes too."""
        if self.view == "images":
            self._remove_images()
            return
        chosen = self.targets()
        if not chosen or any(
            self._writable(feed) is None for feed in {f.host.name: f for f, _ in chosen}.values()
        ):
            return
        running = sum(1 for _f, c in chosen if c.state in ("running", "paused", "restarting"))
        hosts = sorted({f.host.name for f, _c in chosen})
        question = f"Remove {len(chosen)} container{'s' if len(chosen) != 1 else ''} on {', '.join(hosts)}?"
        if running:
            question += f" ({running} running: they will be killed)"

        def answered(answer: tuple[bool, bool] | None) -> None:
            if answer and answer[0]:
                self._each(
                    "remove",
                    lambda backend, c: backend.remove(c.id, name=c.name, force=True, volumes=answer[1]),
                    chosen,
                )

        self.app.push_screen(
            ConfirmScreen(
                question,
                [self._label(f, c.name) for f, c in chosen],
                "Remove",
                "Also remove their anonymous volumes",
            ),
            answered,
        )

    def _label(self, feed: HostFeed, name: str) -> str:
        """`name`, with its host in the all-hosts view."""
        return f"{feed.host.name}/{name}" if self.all_hosts else name

    def action_logs(self) -> None:
        """Follow the logs of the container under the cursor."""
        found = self._cursor_container()
        if found is None or found[0].backend is None:
            return
        feed, container = found
        backend = found[0].backend

        def source(since: str | None, tail: int | None) -> AsyncIterator[Sequence[LogLine]]:
            # Always with the engine's timestamps: `t` shows them and a save writes them.
            return backend.logs(
                container.id, follow=True, since=since, tail=tail, timestamps=True, follow_restarts=True
            )

        self.app.push_screen(
            LogScreen(
                f"logs · {container.name} · {feed.host.name}", source=source, source_name=container.name
            )
        )

    def action_inspect(self) -> None:
        """The full inspect document, searchable like a log."""
        found = self._cursor_container()
        if found is None or found[0].backend is None:
            return
        container, backend = found[1], found[0].backend

        async def job() -> None:
            document = json.dumps(await backend.inspect(container.id), indent=2, sort_keys=True)
            lines = [LogLine(text) for text in document.splitlines()]
            self.app.push_screen(
                LogScreen(f"inspect · {container.name}", lines=lines, source_name=f"{container.name}-inspect")
            )

        self._run("inspect", job)

    def action_top(self) -> None:
        """The processes of the container under the cursor."""
        found = self._cursor_container()
        if found is None or found[0].backend is None:
            return
        container, backend = found[1], found[0].backend
        self.app.push_screen(TopScreen(f"top · {container.name}", lambda: backend.top(container.id)))

    def on_resource_table_activated(self, event: ResourceTable.Activated) -> None:
        """Enter: the details of a container (inspect), or an image's containers."""
        if event.table.id == "containers-table":
            self.action_inspect()

    async def action_exec(self) -> None:
        """A shell in the container: the console steps aside until the shell exits."""
        found = self._cursor_container()
        if found is None:
            return
        feed, container = found
        backend = self._writable(feed)
        if backend is None:
            return
        try:
            argv = container_shell(backend, container.id, container.name)
        except BerthError as exc:
            self.notify(str(exc), severity="error")
            return
        await run_in_terminal(self, argv)

    def _cursor_project(self) -> tuple[HostFeed, ComposeProject] | None:
        """The compose project of the group heading or container under the cursor."""
        group = self.table.cursor_group()
        if group is not None:
            keys = [k for k, c in self.containers.items() if self._group(k, c) == group]
        else:
            key = self.table.cursor_id()
            keys = [key] if key in self.containers else []
        if not keys or not self.containers[keys[0]].project:
            return None
        feed = self.feeds[self.where[keys[0]]]
        name = self.containers[keys[0]].project
        mine = [c for k, c in self.containers.items() if self.where[k] == feed.host.name]
        project = next((p for p in group_projects(mine) if p.name == name), None)
        return (feed, project) if project else None

    def _group(self, key: str, container: ContainerInfo) -> str | None:
        return container_row(container, None, self.where.get(key) if self.all_hosts else None).group

    def action_compose(self, action: str) -> None:
        """up / down / restart the compose project under the cursor (or of the container there)."""
        found = self._cursor_project()
        if found is None:
            self.notify("Put the cursor on a compose project (g groups by project).", severity="warning")
            return
        feed, project = found
        if self._writable(feed) is None:
            return

        def go() -> None:
            async def compose(job: Job) -> None:
                job.progress(0, None, f"docker compose {action}…")
                await run_compose(feed.session, project, action)

            run_job(
                self,
                f"compose {action} {project.name}",
                feed.host.name,
                compose,
                done=f"compose {action}: {project.name}",
            )

        if action != "down":
            go()
            return
        names = [c.name for c in project.containers]
        self.app.push_screen(
            ConfirmScreen(
                f"Take compose project {project.name!r} on {feed.host.name} down (containers removed)?",
                names,
                "Down",
            ),
            lambda answer: go() if answer and answer[0] else None,
        )

    def _cursor_container(self) -> tuple[HostFeed, ContainerInfo] | None:
        key = self.table.cursor_id()
        if not key or key not in self.containers:
            return None
        return self.feeds[self.where[key]], self.containers[key]

    # Images --------------------------------------------------------------------------------------

    def action_switch_view(self) -> None:
        """Containers <-> images."""
        self.view = "images" if self.view == "containers" else "containers"
        self.query_one(ContentSwitcher).current = f"{self.view}-table"
        self.set_class(self.view == "images", "-images")  # the strip is about containers
        self.refresh_bindings()
        self.focus()
        if self.view == "images":
            self.reload_images()

    def reload_images(self) -> None:
        """Read the image lists again (every reachable host's, at once)."""
        feeds = [f for f in self.feeds.values() if f.backend is not None]

        async def one(feed: HostFeed) -> dict[str, ImageInfo]:
            assert feed.backend is not None
            return {self.key(feed.host.name, i.id): i for i in await feed.backend.images()}

        async def job() -> None:
            images: dict[str, ImageInfo] = {}
            for part in await asyncio.gather(*(one(f) for f in feeds)):
                images.update(part)
            self.images = images
            self.images_table.update_rows(
                {key: image_row(i, host=self.where_image(key)) for key, i in images.items()}
            )

        self._run("images", job)

    def where_image(self, key: str) -> str | None:
        """The host of image row `key` in the all-hosts view (None on one host's view)."""
        return key.rpartition("/")[0] if self.all_hosts else None

    def _image_targets(self) -> list[tuple[HostFeed, ImageInfo]]:
        """(host feed, image) of the marked images, else of the one under the cursor."""
        found = []
        for key in self.images_table.selected_ids():
            feed = self.feeds.get(self.where_image(key) or self.host.name)
            if feed is not None and key in self.images:
                found.append((feed, self.images[key]))
        return found

    def action_move(self) -> None:
        """Stream the selected image(s) to another host of the inventory, each by its repo:tags
        (all of them, so it arrives tagged as it is here; an untagged one by its id)."""
        chosen = [(feed, image) for feed, image in self._image_targets() if feed.backend is not None]
        if not chosen:
            return
        sources = {f.host.name for f, _i in chosen}
        others = [(h.name, f"{h.name}  {h.url}") for h in self.config.hosts if h.name not in sources]
        if not others:
            self.notify("The inventory has no other host to move images to.", severity="warning")
            return

        def picked(name: str | None) -> None:
            target_host = self.config.host(name) if name else None
            if target_host is None:
                return

            for feed, image in chosen:
                refs = list(image.tags) or [image.id]
                what = image_label(image)

                async def move(job: Job, feed: HostFeed = feed, refs: list[str] = refs) -> None:
                    assert feed.backend is not None
                    target = await DockerBackend.for_session(self.sessions.get(target_host))
                    try:
                        moved = await feed.backend.move_image(
                            refs,
                            target,
                            lambda sent, size: job.progress(sent, size, f"{human_bytes(sent)} sent"),
                        )
                    finally:
                        await target.close()
                    job.detail = f"now {moved.removeprefix('sha256:')[:12]} on {target_host.name}"

                run_job(
                    self,
                    f"move image {what} to {target_host.name}",
                    feed.host.name,
                    move,
                    unit="bytes",
                    done=f"{what} is now on {target_host.name}.",
                )

        self.app.push_screen(PickerScreen("Move image to host", others), picked)

    def _remove_images(self) -> None:
        chosen = self._image_targets()
        if not chosen or any(self._writable(f) is None for f, _i in chosen):
            return
        names = [image_label(image) for _f, image in chosen]
        hosts = ", ".join(sorted({f.host.name for f, _i in chosen}))

        async def job() -> None:
            for feed, image in chosen:
                assert feed.backend is not None
                await feed.backend.remove_image(image.id)
            self.notify(f"Removed {len(chosen)} image(s).", timeout=3)
            self.reload_images()

        self.app.push_screen(
            ConfirmScreen(f"Remove {len(chosen)} image(s) on {hosts}?", names, "Remove"),
            lambda answer: self._run("remove image", job) if answer and answer[0] else None,
        )

    def action_prune(self) -> None:
        """Remove dangling images of the host under the cursor, after asking."""
        chosen = self._image_targets()
        feed = chosen[0][0] if chosen else self.feeds[self.host.name]
        backend = self._writable(feed)
        if backend is None:
            return
        dangling = [
            k.rpartition("/")[2] if self.all_hosts else k
            for k, row in self.images_table.rows.items()
            if not row.cells.get("tags") and (not self.all_hosts or k.startswith(f"{feed.host.name}/"))
        ]

        async def job() -> None:
            count, reclaimed = await backend.prune_images()
            self.notify(
                f"Pruned {count} dangling image(s) on {feed.host.name}, {human_bytes(reclaimed)} reclaimed."
            )
            self.reload_images()

        self.app.push_screen(
            ConfirmScreen(
                f"Remove the dangling images on {feed.host.name}?",
                [d.removeprefix("sha256:")[:12] for d in dangling] or ["(none listed)"],
                "Prune",
            ),
            lambda answer: self._run("prune", job) if answer and answer[0] else None,
        )
