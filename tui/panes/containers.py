"""The Containers pane: a host's Docker containers and images, kept current by the event stream."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Label, Sparkline

from backends.audit import audit
from backends.compose import run_compose
from backends.config import Config, HostConfig
from backends.docker import DockerBackend
from backends.docker_models import ContainerChange, ContainerInfo, StatsPoint, group_projects
from backends.errors import BerthError, Denied
from backends.streams import LogLine
from tui.format import human_bytes
from tui.panes.container_rows import CONTAINER_COLUMNS, IMAGE_COLUMNS, container_row, image_row
from tui.screens.confirm import ConfirmScreen
from tui.screens.logs import LogScreen
from tui.screens.picker import PickerScreen
from tui.screens.top import TopScreen
from tui.widgets.resource_table import ResourceTable

STATS_SECONDS = 2.0
STATS_HISTORY = 60
STATS_MAX_ROWS = 60
# Keys that only make sense on one of the two views.
CONTAINER_ACTIONS = {"logs", "restart", "pause", "exec", "inspect", "top", "compose"}
IMAGE_ACTIONS = {"move", "prune"}


class ContainerStrip(Horizontal):
    """Under the table: the selected container in one line, and its CPU and memory sparklines."""

    def compose(self) -> ComposeResult:
        """Summary, then two sparklines."""
        yield Label(id="strip-summary")
        with Vertical(classes="spark"):
            yield Label("CPU", id="cpu-label")
            yield Sparkline([], id="cpu-spark")
        with Vertical(classes="spark"):
            yield Label("MEM", id="mem-label")
            yield Sparkline([], id="mem-spark")

    def show(self, container: ContainerInfo | None, history: Sequence[StatsPoint]) -> None:
        """Describe `container` (or nothing) with its stats history."""
        summary = self.query_one("#strip-summary", Label)
        if container is None:
            summary.update("")
            return
        bits = [f"[b]{container.name}[/b] {container.short_id}", container.image, container.status]
        if container.ports:
            bits.append(container.ports)
        summary.update("  ·  ".join(bits))
        cpu = [p.cpu_percent or 0.0 for p in history]
        mem = [float(p.memory) for p in history]
        self.query_one("#cpu-spark", Sparkline).data = cpu
        self.query_one("#mem-spark", Sparkline).data = mem
        last = history[-1] if history else None
        cpu_now = f"{last.cpu_percent:.1f}%" if last and last.cpu_percent is not None else "-"
        self.query_one("#cpu-label", Label).update(f"CPU {cpu_now}")
        self.query_one("#mem-label", Label).update(f"MEM {human_bytes(last.memory) if last else '-'}")


class ContainersPane(Widget):
    """Containers (default) or images of the current host; actions apply to the marked rows."""

    BINDINGS = [
        Binding("l", "logs", "Logs", id="containers.logs"),
        Binding("s", "act('stop')", "Stop", id="containers.stop"),
        Binding("S", "act('start')", "Start", id="containers.start"),
        Binding("r", "restart", "Restart", id="containers.restart"),
        Binding("p", "pause", "Pause", id="containers.pause"),
        Binding("d", "remove", "Remove", id="containers.remove"),
        Binding("e", "exec", "Shell", id="containers.exec"),
        Binding("i", "inspect", "Inspect", id="containers.inspect"),
        Binding("t", "top", "Top", id="containers.top"),
        Binding("U", "compose('up')", "Project up", show=False, id="containers.up"),
        Binding("D", "compose('down')", "Project down", show=False, id="containers.down"),
        Binding("v", "switch_view", "Images", id="containers.view"),
        Binding("m", "move", "Move to host", id="containers.move"),
        Binding("P", "prune", "Prune dangling", id="containers.prune"),
    ]

    def __init__(self, host: HostConfig, config: Config) -> None:
        super().__init__(id="pane-containers", classes="pane containers")
        self.config = config
        self.host = host
        self.backend: DockerBackend | None = None
        self.containers: dict[str, ContainerInfo] = {}
        self.stats: dict[str, deque[StatsPoint]] = {}
        self.view = "containers"
        self.offline = ""
        self.changes_seen = 0

    def compose(self) -> ComposeResult:
        """The two tables (one on show) and the strip."""
        with ContentSwitcher(initial="containers-table"):
            yield ResourceTable(
                CONTAINER_COLUMNS,
                id="containers-table",
                group_label="compose: {group}",
                no_group_label="(no project)",
                empty_message="Connecting…",
            )
            yield ResourceTable(
                IMAGE_COLUMNS, id="images-table", groupable=False, empty_message="No images on this host."
            )
        yield ContainerStrip(id="container-strip")

    def on_mount(self) -> None:
        """Connect to the host's Docker."""
        self.set_host(self.host)

    async def on_unmount(self) -> None:
        """Close the connection to the engine."""
        self.workers.cancel_group(self, "docker")
        if self.backend is not None:
            await self.backend.close()

    # Host and live data ------------------------------------------------------------------------

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

    def set_host(self, host: HostConfig) -> None:
        """Show `host`'s containers (stopping the watch on the previous host)."""
        self.host = host
        self.containers.clear()
        self.stats.clear()
        self.table.update_rows({})
        self.images_table.update_rows({})
        self.workers.cancel_group(self, "docker")
        old, self.backend = self.backend, None
        if old is not None:
            self.run_worker(old.close(), group="closing")
        try:
            self.backend = DockerBackend.for_host(host)
        except BerthError as exc:
            self._set_offline(str(exc))
            return
        self.table.empty_message = f"No containers on {host.name}."
        self.watch_containers(self.backend)
        self.sample_stats(self.backend)

    def _set_offline(self, why: str) -> None:
        self.offline = why
        self.set_class(bool(why), "-offline")
        if why:
            self.table.empty_message = why
        self.border_subtitle = why

    @work(group="docker", exit_on_error=False)
    async def watch_containers(self, backend: DockerBackend) -> None:
        """Apply the engine's changes as they come (events, coalesced by the backend)."""
        async for change in backend.watch():
            if backend is not self.backend:
                return
            self.apply_change(change)

    def apply_change(self, change: ContainerChange) -> None:
        """Bring the table in line with `change`."""
        self.changes_seen += 1
        if change.error:
            self._set_offline(change.error)
            return
        if self.offline:
            self._set_offline("")
        if change.full:
            self.containers = dict(change.upserts)
        else:
            self.containers.update(change.upserts)
            for cid in change.removed:
                self.containers.pop(cid, None)
                self.stats.pop(cid, None)
        self._redraw()

    def _redraw(self) -> None:
        rows = {cid: container_row(c, self._last_stats(cid)) for cid, c in self.containers.items()}
        self.table.update_rows(rows)
        self._show_strip()

    def _last_stats(self, cid: str) -> StatsPoint | None:
        history = self.stats.get(cid)
        return history[-1] if history else None

    @work(group="docker", exit_on_error=False)
    async def sample_stats(self, backend: DockerBackend) -> None:
        """Sample the running containers on screen every 2 s (never all of them, never a stream each)."""
        while backend is self.backend:
            wanted = self._stats_targets()
            if wanted:
                try:
                    points = await backend.stats_many(wanted)
                except BerthError:
                    points = {}
                for cid, point in points.items():
                    self.stats.setdefault(cid, deque(maxlen=STATS_HISTORY)).append(point)
                if points:
                    self._redraw()
            await asyncio.sleep(STATS_SECONDS)

    def _stats_targets(self) -> list[str]:
        """Running containers in the rows on screen now (plus the selected one)."""
        if self.view != "containers" or not self.is_on_screen:
            return []
        ids = self.table.visible_ids()
        grid = self.table.data_table
        # Display lines, not ids: group headings take lines too, so this may over-count by a few.
        first = int(grid.scroll_offset.y)
        on_screen = ids[first : first + max(grid.size.height, 1)]
        cursor = self.table.cursor_id()
        if cursor and cursor not in on_screen:
            on_screen.append(cursor)
        running = [
            cid for cid in on_screen if cid in self.containers and self.containers[cid].state == "running"
        ]
        return running[:STATS_MAX_ROWS]

    @property
    def is_on_screen(self) -> bool:
        """True while this pane is the one shown on the screen in front."""
        return self.screen is self.app.screen and self.display and self.region.area > 0

    def _show_strip(self) -> None:
        cid = self.table.cursor_id()
        container = self.containers.get(cid) if cid else None
        self.query_one(ContainerStrip).show(container, list(self.stats.get(cid or "", ())))

    @on(ResourceTable.CursorMoved, "#containers-table")
    def _cursor_moved(self) -> None:
        self._show_strip()

    # Targets, guards -------------------------------------------------------------------------------

    def targets(self) -> list[ContainerInfo]:
        """The marked containers, else the one under the cursor (a project header: all its containers)."""
        return [self.containers[cid] for cid in self.table.selected_ids() if cid in self.containers]

    def _writable(self) -> DockerBackend | None:
        """The backend to act through; None, with a notification saying why, when acting is not allowed."""
        problem = None
        if self.backend is None:
            problem = Denied(self.offline or "No Docker on this host.", "Pick another host with H.")
        elif self.config.ui.read_only or self.host.read_only:
            problem = Denied(
                f"{self.host.name} is read-only here.", "Set read_only = false in the config to act."
            )
        if problem is not None:
            self.notify(str(problem), severity="warning")
            return None
        return self.backend

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show each key only on the view it works on."""
        if action in CONTAINER_ACTIONS or action == "act":
            return self.view == "containers"
        if action in IMAGE_ACTIONS:
            return self.view == "images"
        return True

    def _run(self, label: str, job: Callable[[], Awaitable[object]]) -> None:
        """Run an engine call off the UI; failures become one notification."""

        async def go() -> None:
            try:
                await job()
            except BerthError as exc:
                self.notify(str(exc), title=label, severity="error", timeout=8)

        self.run_worker(go(), group="actions", exit_on_error=False)

    # Container actions ---------------------------------------------------------------------------

    def action_act(self, verb: str) -> None:
        """stop / start on the targets."""
        self._each(verb, lambda backend, c: backend.act(verb, c.id))

    def _each(self, verb: str, call: Callable[[DockerBackend, ContainerInfo], Awaitable[None]]) -> None:
        backend = self._writable()
        if backend is None:
            return
        chosen = self.targets()
        if not chosen:
            return

        async def job() -> None:
            failed = []
            for c in chosen:
                try:
                    await call(backend, c)
                except BerthError as exc:
                    failed.append(f"{c.name}: {exc.message}")
            if failed:
                raise BerthError("; ".join(failed))
            names = ", ".join(c.name for c in chosen[:3]) + (
                f" and {len(chosen) - 3} more" if len(chosen) > 3 else ""
            )
            self.notify(f"{verb}: {names}", timeout=3)

        self._run(verb, job)

    def action_restart(self) -> None:
        """Restart the targets; on a project header, the project through compose."""
        if self.table.cursor_group() and not self.table.marked_ids():
            self.action_compose("restart")
            return
        self._each("restart", lambda backend, c: backend.act("restart", c.id))

    def action_pause(self) -> None:
        """Pause running targets, unpause paused ones."""
        self._each(
            "pause/unpause",
            lambda backend, c: backend.act("unpause" if c.state == "paused" else "pause", c.id),
        )

    def action_remove(self) -> None:
        """Remove the targets, after asking (naming them); optionally their volumes too."""
        if self._writable() is None:
            return
        if self.view == "images":
            self._remove_images()
            return
        chosen = self.targets()
        if not chosen:
            return
        running = sum(1 for c in chosen if c.state in ("running", "paused", "restarting"))
        question = f"Remove {len(chosen)} container{'s' if len(chosen) != 1 else ''} on {self.host.name}?"
        if running:
            question += f" ({running} running: they will be killed)"

        def answered(answer: tuple[bool, bool] | None) -> None:
            if answer and answer[0]:
                self._each("remove", lambda backend, c: backend.remove(c.id, force=True, volumes=answer[1]))

        self.app.push_screen(
            ConfirmScreen(
                question, [c.name for c in chosen], "Remove", "Also remove their anonymous volumes"
            ),
            answered,
        )

    def action_logs(self) -> None:
        """Follow the logs of the container under the cursor."""
        container = self._cursor_container()
        if container is None or self.backend is None:
            return
        backend = self.backend

        def source(since: str | None, tail: int | None) -> AsyncIterator[Sequence[LogLine]]:
            return backend.logs(container.id, follow=True, since=since, tail=tail, follow_restarts=True)

        self.app.push_screen(
            LogScreen(
                f"logs · {container.name} · {self.host.name}", source=source, source_name=container.name
            )
        )

    def action_inspect(self) -> None:
        """The full inspect document, searchable like a log."""
        container = self._cursor_container()
        if container is None or self.backend is None:
            return
        backend = self.backend

        async def job() -> None:
            document = json.dumps(await backend.inspect(container.id), indent=2, sort_keys=True)
            lines = [LogLine(text) for text in document.splitlines()]
            self.app.push_screen(
                LogScreen(f"inspect · {container.name}", lines=lines, source_name=f"{container.name}-inspect")
            )

        self._run("inspect", job)

    def action_top(self) -> None:
        """The processes of the container under the cursor."""
        container = self._cursor_container()
        if container is None or self.backend is None:
            return
        backend = self.backend
        self.app.push_screen(TopScreen(f"top · {container.name}", lambda: backend.top(container.id)))

    def on_resource_table_activated(self, event: ResourceTable.Activated) -> None:
        """Enter: the details of a container (inspect), or an image's containers."""
        if event.table.id == "containers-table":
            self.action_inspect()

    def action_exec(self) -> None:
        """A shell in the container: the console steps aside until the shell exits."""
        container = self._cursor_container()
        if container is None:
            return
        backend = self._writable()
        if backend is None:
            return
        docker = shutil.which("docker")
        if docker is None:
            self.notify("The docker command is not installed here; a shell needs it.", severity="error")
            return
        shell = "command -v bash >/dev/null && exec bash || exec sh"
        argv = [docker, "-H", f"unix://{backend.socket_path}", "exec", "-it", container.id, "sh", "-c", shell]
        audit(self.host.name, "container.exec", [container.id])
        try:
            with self.app.suspend():
                subprocess.run(argv, check=False)
        except Exception as exc:  # SuspendNotSupported under a test driver or a web terminal
            self.notify(f"Cannot open a shell from this terminal: {exc}", severity="error")

    def action_compose(self, action: str) -> None:
        """up / down / restart the compose project under the cursor (or of the container there)."""
        backend = self._writable()
        if backend is None:
            return
        name = self.table.cursor_group()
        if name is None:
            container = self._cursor_container()
            name = container.project if container else None
        projects = {p.name: p for p in group_projects(list(self.containers.values()))}
        if name not in projects:
            self.notify("Put the cursor on a compose project (g groups by project).", severity="warning")
            return
        project = projects[name]

        def go() -> None:
            async def job() -> None:
                await run_compose(self.host.name, project, action, backend.socket_path)
                self.notify(f"compose {action}: {project.name}", timeout=3)

            self._run(f"compose {action}", job)

        if action != "down":
            go()
            return
        names = [c.name for c in project.containers]
        self.app.push_screen(
            ConfirmScreen(f"Take compose project {name!r} down (containers removed)?", names, "Down"),
            lambda answer: go() if answer and answer[0] else None,
        )

    def _cursor_container(self) -> ContainerInfo | None:
        cid = self.table.cursor_id()
        return self.containers.get(cid) if cid else None

    # Images --------------------------------------------------------------------------------------

    def action_switch_view(self) -> None:
        """Containers <-> images."""
        self.view = "images" if self.view == "containers" else "containers"
        self.query_one(ContentSwitcher).current = f"{self.view}-table"
        self.query_one(ContainerStrip).display = self.view == "containers"
        self.refresh_bindings()
        self.focus()
        if self.view == "images":
            self.reload_images()

    def reload_images(self) -> None:
        """Read the image list again."""
        backend = self.backend
        if backend is None:
            return

        async def job() -> None:
            self.images_table.update_rows({i.id: image_row(i) for i in await backend.images()})

        self._run("images", job)

    def action_move(self) -> None:
        """Stream the selected image(s) to another host of the inventory."""
        images = self.images_table.selected_ids()
        if not images or self.backend is None:
            return
        others = [(h.name, f"{h.name}  {h.url}") for h in self.config.hosts if h.name != self.host.name]
        if not others:
            self.notify("The inventory has no other host to move images to.", severity="warning")
            return
        source = self.backend

        def chosen(name: str | None) -> None:
            target_host = self.config.host(name) if name else None
            if target_host is None:
                return

            async def job() -> None:
                target = DockerBackend.for_host(target_host)
                try:
                    for image in images:
                        shown = image.removeprefix("sha256:")[:12]
                        self.notify(f"Moving {shown} to {target_host.name}…", timeout=3)
                        moved = await source.move_image(image, target)
                        self.notify(
                            f"{shown} is now on {target_host.name} ({moved.removeprefix('sha256:')[:12]})."
                        )
                finally:
                    await target.close()

            self._run("move image", job)

        self.app.push_screen(PickerScreen("Move image to host", others), chosen)

    def _remove_images(self) -> None:
        images = self.images_table.selected_ids()
        if not images or self.backend is None:
            return
        backend = self.backend
        rows = self.images_table.rows
        names = [str(rows[i].cells.get("tags") or i.removeprefix("sha256:")[:12]) for i in images]

        async def job() -> None:
            for image in images:
                await backend.remove_image(image)
            self.notify(f"Removed {len(images)} image(s).", timeout=3)
            self.reload_images()

        self.app.push_screen(
            ConfirmScreen(f"Remove {len(images)} image(s) on {self.host.name}?", names, "Remove"),
            lambda answer: self._run("remove image", job) if answer and answer[0] else None,
        )

    def action_prune(self) -> None:
        """Remove dangling images, after asking."""
        backend = self._writable()
        if backend is None:
            return
        dangling = [i for i, row in self.images_table.rows.items() if not row.cells.get("tags")]

        async def job() -> None:
            count, reclaimed = await backend.prune_images()
            self.notify(f"Pruned {count} dangling image(s), {human_bytes(reclaimed)} reclaimed.")
            self.reload_images()

        self.app.push_screen(
            ConfirmScreen(
                f"Remove the dangling images on {self.host.name}?",
                [d.removeprefix("sha256:")[:12] for d in dangling] or ["(none listed)"],
                "Prune",
            ),
            lambda answer: self._run("prune", job) if answer and answer[0] else None,
        )
