"""The Containers pane: Docker containers of one host, or of every host at once, and (`v`, or
`:images`, `:volumes`, `:networks`) their images, volumes and networks.

A thin view over the hosts' Docker feeds (tui/models/docker_feed.py, through `EnginePane`): the
containers they report are kept by tui/models/container_list.py with what is under way on each;
the pane draws them, asks the stats schedule (tui/models/stats_schedule.py) to sample the running
ones on screen, and holds the container and compose verbs. Images, volumes and networks are each
their own view (tui/panes/images_view.py, volumes_view.py, networks_view.py). Rows are keyed by
container id on one host and by `host/id` in the all-hosts view, where a host column says where
each row lives and actions go to the row's own host.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.widgets import ContentSwitcher

from backends.compose import run_compose
from backends.config import Config, HostConfig
from backends.docker import DockerBackend
from backends.docker_models import ComposeProject, ContainerChange, ContainerInfo, StatsPoint, group_projects
from backends.errors import BerthError
from backends.hosts import Sessions
from backends.shells import container_shell
from backends.streams import LogLine
from tui.acting import permitted, run_action, run_in_terminal, run_job, shown
from tui.jobs import Job
from tui.models.container_list import ContainerList
from tui.models.docker_feed import DockerFeed, DockerSource
from tui.models.host_feed import CONNECTING
from tui.models.stats_schedule import StatsSchedule, StatsTarget
from tui.panes.container_rows import (
    CONTAINER_COLUMNS,
    HOST_COLUMN,
    container_row,
    host_error_row,
    stats_cells,
)
from tui.panes.container_strip import ContainerStrip
from tui.panes.engine_pane import LIVE, EnginePane
from tui.panes.images_view import ImagesView
from tui.panes.networks_view import NetworksView
from tui.panes.resource_view import ResourceView
from tui.panes.volumes_view import VolumesView
from tui.screens.confirm import ConfirmScreen
from tui.verbs import action_views, bindings
from tui.widgets.resource_table import ResourceTable
from tui.widgets.table_model import Row

STATUS_TICK = 60.0
"""Seconds between redraws of the STATUS ages, which say minutes at the finest (`table_age`)."""
PENDING_GRACE = 2.0
"""Seconds a row keeps saying "stopping…" after the engine answered, for its event to arrive (an
action with nothing to do, such as stopping a stopped container, brings none)."""
ACTION_VIEWS = action_views("containers")
"""Action name -> the one view (the containers) its keys make sense on (tui.verbs says)."""
VIEWS = ("containers", "images", "volumes", "networks")
"""The pane's views in the order `v` goes through them."""


class ContainersPane(EnginePane[DockerBackend, ContainerChange]):
    """Containers (default), images, volumes or networks of the hosts on show; actions apply to
    the marked rows."""

    TABLE_ID = "containers-table"
    DEFAULT_CSS = """
    ContainersPane > ContentSwitcher { height: 1fr; }
    ContainersPane.-resources > ContainerStrip { display: none; }
    """

    BINDINGS = bindings("containers")

    def __init__(
        self, hosts: Sequence[HostConfig], config: Config, sessions: Sessions, *, all_hosts: bool = False
    ) -> None:
        super().__init__(
            DockerSource(),
            hosts,
            hosts[0],
            config,
            sessions,
            all_hosts=all_hosts,
            id="pane-containers",
            classes="pane containers",
        )
        self.listing = ContainerList(self.key)
        self.schedule = StatsSchedule()
        self.view = "containers"
        self.images_view = ImagesView(self, id="images-view")
        self.resource_views: dict[str, ResourceView[DockerBackend, Any]] = {
            "images": self.images_view,
            "volumes": VolumesView(self, id="volumes-view"),
            "networks": NetworksView(self, id="networks-view"),
        }
        """The views other than the containers, by name."""

    @property
    def containers(self) -> dict[str, ContainerInfo]:
        """Every container on show by row key."""
        return self.listing.containers

    @property
    def stats(self) -> dict[str, deque[StatsPoint]]:
        """Each sampled container's stats history, by row key."""
        return self.schedule.history

    @property
    def changes_seen(self) -> int:
        """Changes the engines reported so far (a list, or a burst of events)."""
        return self.updates

    @property
    def images_table(self) -> ResourceTable:
        """The images view's table."""
        return self.images_view.table

    def compose(self) -> ComposeResult:
        """The containers table and the other views (one on show), and the strip."""
        with ContentSwitcher(initial=self.TABLE_ID):
            # By name (not by the HOST column in front in the all-hosts view, under which a
            # host's own rows had no order while the arrow said they did).
            yield ResourceTable(
                (HOST_COLUMN, *CONTAINER_COLUMNS) if self.all_hosts else CONTAINER_COLUMNS,
                id=self.TABLE_ID,
                sort_column="name",
                group_label="compose: {group}",
                no_group_label="(no project)",
                empty_message=CONNECTING,
            )
            yield from self.resource_views.values()
        yield ContainerStrip(id="container-strip", classes="-empty")

    def on_mount(self) -> None:
        """Start the stats sampler and the STATUS ages' clock (`EnginePane` starts the feeds)."""
        sampler = self.schedule.run(self._stats_targets, self._sampled)
        self.run_worker(sampler, group=LIVE, exit_on_error=False)
        self.run_worker(self._age_statuses(), group=LIVE, exit_on_error=False)

    def focus(self, scroll_visible: bool = True) -> ContainersPane:
        """Focus goes to the view on show."""
        (self.table if self.view == "containers" else self.resource_views[self.view]).focus(scroll_visible)
        return self

    # Live data ---------------------------------------------------------------------------------

    def apply_update(self, feed: DockerFeed, update: ContainerChange) -> None:
        """Bring `feed`'s rows in line with a change of its containers."""
        for key in self.listing.apply(feed.host.name, update):
            self.schedule.forget(key)
        self.redraw()

    def empty_text(self, where: str) -> str:
        """What the table says with no container."""
        return f"No containers on {where}."

    def error_row(self, host: str, error: str) -> Row:
        """The all-hosts view's row for a host whose Docker cannot be read (why, in STATUS)."""
        return host_error_row(host, error)

    def redraw(self) -> None:
        """Draw every container (with what is under way on it) and the strip."""
        host_of = self.listing.where.get if self.all_hosts else (lambda _key: None)
        now = time.time()
        labels = {key: pending.label for key, pending in self.listing.pending.items()}
        rows = {
            key: container_row(c, self.schedule.last(key), host_of(key), now=now, pending=labels.get(key))
            for key, c in self.containers.items()
        }
        rows.update(self.error_rows())
        self.table.update_rows(rows)
        self._show_strip()

    def _sampled(self, keys: set[str]) -> None:
        """A stats round brought `keys` a sample: redraw when a CPU or MEM cell reads differently.

        Rebuilding all rows costs ~5 ms with 300 of them; most samples of idle containers change
        no figure on show, and then only the strip's history of the cursor row moves on.
        """

        def moved(key: str) -> bool:
            container, history = self.containers.get(key), self.schedule.history[key]
            if container is None:
                return False
            before = history[-2] if len(history) > 1 else None
            return stats_cells(container, before) != stats_cells(container, history[-1])

        if any(moved(key) for key in keys):
            self.redraw()
        elif keys:
            self._show_strip()

    async def _age_statuses(self) -> None:
        """Draw the STATUS ages again once a minute, with no event to say so (only the cells that
        changed are redrawn); not while the pane is out of sight."""
        while True:
            await asyncio.sleep(STATUS_TICK)
            if self.view == "containers" and shown(self):
                self.redraw()

    def _stats_targets(self) -> list[StatsTarget]:
        """Running containers in the rows on screen now (plus the selected one)."""
        if self.view != "containers" or not shown(self):
            return []
        on_screen = self.table.ids_on_screen()
        cursor = self.table.cursor_id()
        if cursor and cursor not in on_screen:
            on_screen.append(cursor)
        return [
            StatsTarget(key, self.feeds[self.listing.where[key]], self.containers[key].id)
            for key in on_screen
            if key in self.containers and self.containers[key].state == "running"
        ]

    def _show_strip(self) -> None:
        key = self.table.cursor_id()
        strip = self.query_one(ContainerStrip)
        if feed := self.error_feed(key):
            strip.say(f"{feed.host.name}: {feed.error}")  # an error row shows the error in full here
            return
        container = self.containers.get(key) if key else None
        strip.show(container, list(self.stats.get(key or "", ())), time.time())

    @on(ResourceTable.CursorMoved, "#containers-table")
    def _cursor_moved(self) -> None:
        self._show_strip()

    # Targets, guards -------------------------------------------------------------------------------

    def targets(self) -> list[tuple[DockerFeed, ContainerInfo]]:
        """The marked containers, else the one under the cursor (a project header: all its containers)."""
        return [
            (self.feeds[self.listing.where[key]], self.containers[key])
            for key in self.table.selected_ids()
            if key in self.containers
        ]

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
        chosen: list[tuple[DockerFeed, ContainerInfo]] | None = None,
    ) -> None:
        chosen = self.targets() if chosen is None else chosen
        backends = self.writable_all(f for f, _c in chosen)
        if backends is None or not chosen:
            return
        keys = [self.key(feed.host.name, c.id) for feed, c in chosen]
        if self.listing.begin(verb, {key: c for key, (_f, c) in zip(keys, chosen, strict=True)}):
            self.redraw()

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
        if key not in self.listing.pending:
            return
        pending = self.listing.settle(key, failed=failed)
        if pending is None:
            self.redraw()
            return

        def give_up() -> None:
            if self.listing.give_up(key, pending):
                self.redraw()

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
            self.images_view.ask_remove()
            return
        chosen = self.targets()
        if not chosen or self.writable_all(f for f, _c in chosen) is None:
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

    def action_update(self) -> None:
        """Update the targets to their images' newest pull, after asking: one job for all of them,
        each recreated with the same settings when its image changed (backends/docker_update.py);
        its end says old id → new id of each, or that it was up to date."""
        from backends.docker_pull import PullProgress
        from tui.pull_progress import pull_summary
        from tui.screens.confirm import subject

        chosen = self.targets()
        backends = self.writable_all(f for f, _c in chosen)
        if not chosen or backends is None:
            return
        names = [self._label(f, c.name) for f, c in chosen]
        hosts = ", ".join(sorted({f.host.name for f, _c in chosen}))

        async def update(job: Job) -> None:
            failures: list[BerthError] = []
            said: list[str] = []
            for index, ((feed, container), name) in enumerate(zip(chosen, names, strict=True)):

                def report(stage: str, pull: PullProgress | None, at: int = index, name: str = name) -> None:
                    job.progress(at, len(chosen), f"{name}: {pull_summary(pull) if pull else stage}")

                try:
                    result = await backends[feed.host.name].update(container.id, report, session=feed.session)
                except BerthError as exc:
                    failures.append(exc)
                    continue
                said.append(result.sentence())
            job.progress(len(chosen), len(chosen), f"{len(chosen) - len(failures)} of {len(chosen)} done")
            job.outcome = " ".join(said)
            if failures and said:  # the failure ends the job: say what went well first
                self.notify(job.outcome, timeout=8)
            if len(failures) == 1:
                raise failures[0]
            if failures:
                raise BerthError(" ".join(exc.message for exc in failures), failures[0].hint)

        what = subject(names, "container")
        self.app.push_screen(
            ConfirmScreen(
                f"Update {what} on {hosts}? Each is pulled; one whose image changed is recreated with "
                "the same settings (files it keeps outside its volumes are lost).",
                names,
                "Update",
            ),
            lambda answer: (
                run_job(self, f"update {what}", hosts, update)
                if answer and answer[0]
                else None
            ),
        )

    def _label(self, feed: DockerFeed, name: str) -> str:
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

        from tui.screens.logs import LogScreen  # the log view loads when a log is first opened

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
            from tui.screens.logs import LogScreen

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
        from tui.screens.top import TopScreen

        self.app.push_screen(TopScreen(f"top · {container.name}", lambda: backend.top(container.id)))

    def on_resource_table_activated(self, event: ResourceTable.Activated) -> None:
        """Enter: the container's detail screen, on the row's own host (in the all-hosts view too)."""
        if event.table.id != "containers-table":
            return
        found = self._cursor_container()
        backend = found[0].backend if found else None
        if found is None or backend is None:
            return
        feed, container = found
        from tui.screens.container_detail import ContainerDetailScreen  # loads when first opened

        self.app.push_screen(ContainerDetailScreen(backend, feed.host, container.id, container.name))

    async def action_exec(self) -> None:
        """A shell in the container: the console steps aside until the shell exits."""
        found = self._cursor_container()
        if found is None:
            return
        feed, container = found
        backend = self.writable(feed)
        if backend is None:
            return
        try:
            argv = container_shell(backend, container.id, container.name)
        except BerthError as exc:
            self.notify(str(exc), severity="error")
            return
        await run_in_terminal(self, argv)

    def _cursor_project(self) -> tuple[DockerFeed, ComposeProject] | None:
        """The compose project of the group heading or container under the cursor."""
        group = self.table.cursor_group()
        if group is not None:
            keys = [k for k, c in self.containers.items() if self._group(k, c) == group]
        else:
            key = self.table.cursor_id()
            keys = [key] if key in self.containers else []
        if not keys or not self.containers[keys[0]].project:
            return None
        feed = self.feeds[self.listing.where[keys[0]]]
        name = self.containers[keys[0]].project
        mine = self.listing.of_host(feed.host.name)
        project = next((p for p in group_projects(mine) if p.name == name), None)
        return (feed, project) if project else None

    def _group(self, key: str, container: ContainerInfo) -> str | None:
        return container_row(container, None, self.listing.where.get(key) if self.all_hosts else None).group

    def action_compose(self, action: str) -> None:
        """up / down / restart the compose project under the cursor (or of the container there)."""
        found = self._cursor_project()
        if found is None:
            self.notify("Put the cursor on a compose project (g groups by project).", severity="warning")
            return
        feed, project = found
        if self.writable(feed) is None:
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

    def _cursor_container(self) -> tuple[DockerFeed, ContainerInfo] | None:
        key = self.table.cursor_id()
        if not key or key not in self.containers:
            return None
        return self.feeds[self.listing.where[key]], self.containers[key]

    # The other views -----------------------------------------------------------------------------

    def action_switch_view(self, to: str = "") -> None:
        """Show view `to` (one of `VIEWS`); none named: the next one, wrapping around."""
        self.view = to or VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        shown_view = self.resource_views.get(self.view)
        self.query_one(ContentSwitcher).current = self.TABLE_ID if shown_view is None else shown_view.id
        self.set_class(shown_view is not None, "-resources")  # the strip is about containers
        self.refresh_bindings()
        self.focus()
        if shown_view is not None:
            shown_view.reload()
