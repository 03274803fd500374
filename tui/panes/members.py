"""The Members pane: a host's LXD instances, one (or more) per member of a community server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from textual.app import ComposeResult

from backends.config import Config, HostConfig
from backends.errors import BerthError, Invalid
from backends.hosts import Sessions
from backends.lxd import LxdBackend
from backends.lxd_models import MemberInstance, MemberSpec
from backends.parse_keys import KEYS, read_keys
from backends.shells import member_shell
from backends.streams import LogLine
from backends.units import COUNT, MEMORY_LIMIT, SIZE, parse_count
from tui.acting import permitted, run_action, run_in_terminal, run_job, shown
from tui.format import human_bytes
from tui.jobs import Job
from tui.models.host_feed import CONNECTING
from tui.models.lxd_feed import Instances, LxdFeed, LxdSource
from tui.panes.container_rows import HOST_COLUMN
from tui.panes.engine_pane import EnginePane
from tui.panes.member_rows import MEMBER_COLUMNS, host_error_row, member_row
from tui.screens.confirm import ConfirmScreen
from tui.screens.copy_prompt import ask_copy, member_target
from tui.screens.form import Field, FormScreen
from tui.screens.logs import LogScreen
from tui.screens.member_details import DetailScreen, ForwardsScreen, KeysScreen, SnapshotsScreen
from tui.verbs import bindings
from tui.widgets.resource_table import ResourceTable
from tui.widgets.table_model import Row

NEW_MEMBER_FIELDS = (
    Field("name", "Instance name", "alice"),
    Field("member", "Member", "alice"),
    Field("image", "Image (alias or fingerprint on this host)", "debian/12"),
    Field("keys", "SSH public keys (pasted, or .pub files comma-separated)", grammar=KEYS, lines=3),
    Field("cpu", "CPUs (optional)", grammar=COUNT),
    Field("memory", "Memory (optional)", grammar=MEMORY_LIMIT),
    Field("disk", "Root disk size (optional)", grammar=SIZE),
    Field("contact", "Contact (optional)", "alice@example.org"),
)


def member_spec(values: dict[str, str]) -> MemberSpec:
    """The new-member form's values as a spec (which refuses a missing name, member or image); the
    backend checks keys, image and limits."""
    return MemberSpec(
        values["name"],
        values["member"],
        values["image"],
        keys=read_keys(values["keys"]),
        contact=values["contact"] or None,
        cpu=parse_count(values["cpu"]) if values["cpu"] else None,
        memory=values["memory"] or None,
        disk=values["disk"] or None,
    )


class MembersPane(EnginePane[LxdBackend, Instances]):
    """Member instances of one host (or, in the all-hosts view, of every host, with a HOST
    column), grouped by member; actions apply to the marked rows, each on its own host.

    A thin view over each host's LXD feed (tui/models/lxd_feed.py), which reads the list when the
    pane shows, after each action, and every 5 s while it is shown (never while hidden)."""

    TABLE_ID = "members-table"
    BINDINGS = bindings("members")

    def __init__(
        self,
        host: HostConfig,
        config: Config,
        sessions: Sessions,
        *,
        all_hosts: Sequence[HostConfig] = (),
    ) -> None:
        """`host` is the one whose members are shown, and where `n` and `I` make instances;
        `all_hosts` (the all-hosts view) shows those hosts' members instead, `host` among them."""
        super().__init__(
            LxdSource(),
            list(all_hosts) or [host],
            host,
            config,
            sessions,
            all_hosts=bool(all_hosts),
            id="pane-members",
            classes="pane members",
        )
        self.instances: dict[str, Instances] = {}
        """Host name -> its instances, as last read."""
        self.where: dict[str, tuple[LxdFeed, str]] = {}
        """Row key -> the host feed and instance name it stands for."""

    @property
    def reads(self) -> int:
        """Whole reads of a host's instances so far, every host's."""
        return self.updates

    def compose(self) -> ComposeResult:
        """The instances table, grouped by member (a HOST column first in the all-hosts view)."""
        yield ResourceTable(
            (HOST_COLUMN, *MEMBER_COLUMNS) if self.all_hosts else MEMBER_COLUMNS,
            id="members-table",
            sort_column="name",
            grouped=True,
            group_label="{group}",
            no_group_label="(unowned)",
            empty_message=CONNECTING,
        )

    # Live data ---------------------------------------------------------------------------------

    def wants_data(self) -> bool:
        """Only while on show: most starts never show this pane, and then cost LXD nothing."""
        return shown(self)

    def apply_update(self, feed: LxdFeed, update: Instances) -> None:
        """A whole read of `feed`'s host: draw it."""
        self.instances[feed.host.name] = update
        self.redraw()

    def instance(self, feed: LxdFeed, name: str) -> MemberInstance:
        """Instance `name` of `feed`'s host, as last read."""
        return self.instances[feed.host.name][name]

    def empty_text(self, where: str) -> str:
        """What the table says with no instance."""
        return f"No instances on {where}; n makes one."

    def error_row(self, host: str, error: str) -> Row:
        """The all-hosts view's row for a host whose LXD cannot be read (why, in MEMBER)."""
        return host_error_row(host, error)

    def redraw(self) -> None:
        """Draw every host's instances; in the all-hosts view a host that cannot be read has a
        row saying so (one host alone says it where its rows would be)."""
        rows = self.error_rows()
        self.where = {}
        for feed in self.feeds.values():
            for name, instance in self.instances.get(feed.host.name, {}).items():
                key = self.key(feed.host.name, name)
                self.where[key] = (feed, name)
                rows[key] = member_row(instance, feed.host.name if self.all_hosts else None)
        self.table.update_rows(rows)

    # Guards and running --------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No verb that changes state in read-only mode."""
        return permitted(self, action, parameters)

    def targets(self) -> list[tuple[LxdFeed, str]]:
        """The marked instances, else the one under the cursor (a member heading: all of theirs),
        each with the host feed it is on."""
        return [self.where[key] for key in self.table.selected_ids() if key in self.where]

    def _run(self, label: str, job: Callable[[], Awaitable[object]], done: str = "") -> None:
        """Run an LXD call off the UI; failures become one notification; the list is read again."""
        run_action(self, label, job, done=done, after=self.refresh_now, group="member-actions", timeout=10)

    # Actions -------------------------------------------------------------------------------------

    def action_new(self) -> None:
        """The new-member form; the instance is made (with its keys and limits) when it closes."""
        backend = self.writable(self.home)
        if backend is None:
            return

        def chosen(spec: MemberSpec | None) -> None:
            if spec is None:
                return
            self.notify(f"Creating {spec.name} for {spec.member} on {self.host.name}…", timeout=3)
            self._run(
                f"create {spec.name}",
                lambda: backend.create(spec),
                f"{spec.name} is ready for {spec.member}.",
            )

        self.app.push_screen(
            FormScreen(f"New member container on {self.host.name}", NEW_MEMBER_FIELDS, member_spec, "Create"),
            chosen,
        )

    def action_act(self, action: str) -> None:
        """start / stop / restart the targets."""
        self._each(action, lambda _instance: action)

    def action_freeze(self) -> None:
        """Freeze running targets, unfreeze frozen ones."""
        self._each("freeze/unfreeze", lambda i: "unfreeze" if i.state == "Frozen" else "freeze")

    def _each(self, label: str, action_for: Callable[[MemberInstance], str]) -> None:
        """Apply `action_for(instance)` to each target on its host, one after the other."""
        chosen = self.targets()
        backends = self.writable_all(f for f, _name in chosen)
        if backends is None or not chosen:
            return
        actions = [(backends[f.host.name], name, action_for(self.instance(f, name))) for f, name in chosen]

        async def job() -> None:
            for backend, name, action in actions:
                await backend.act(name, action)

        self._run(label, job, f"{label}: {', '.join(name for _f, name in chosen)}")

    def action_delete(self) -> None:
        """Delete the targets, after a question naming them and their snapshots."""
        chosen = self.targets()
        backends = self.writable_all(f for f, _name in chosen)
        if backends is None or not chosen:
            return
        names = [name for _f, name in chosen]
        about = [(name, f.host.name, self.instance(f, name)) for f, name in chosen]
        shown = [
            f"{name} on {host} ({instance.member or 'unowned'}, {instance.snapshots} snapshots)"
            for name, host, instance in about
        ]
        hosts = ", ".join(dict.fromkeys(f.host.name for f, _name in chosen))

        async def job() -> None:
            for feed, name in chosen:
                await backends[feed.host.name].delete(name)

        self.app.push_screen(
            ConfirmScreen(
                f"Delete {len(names)} instance(s) on {hosts}, with their snapshots?", shown, "Delete"
            ),
            lambda answer: (
                self._run("delete", job, f"Deleted {', '.join(names)}.") if answer and answer[0] else None
            ),
        )

    def _cursor(self) -> tuple[LxdFeed, str] | None:
        key = self.table.cursor_id()
        found = self.where.get(key or "")
        return found if found is not None and found[1] in self.instances.get(found[0].host.name, {}) else None

    def action_details(self, what: str) -> None:
        """The keys, forwards or snapshots of the instance under the cursor (to look at them is
        allowed read-only; their verbs are not)."""
        cursor = self._cursor()
        backend = cursor[0].backend if cursor is not None else None
        if cursor is None or backend is None:
            return
        screens: dict[str, type[DetailScreen]] = {
            "keys": KeysScreen,
            "forwards": ForwardsScreen,
            "snapshots": SnapshotsScreen,
        }
        self.app.push_screen(screens[what](backend, cursor[1]), lambda _result: self.refresh_now())

    def action_copy(self) -> None:
        """The copy form for the instance under the cursor: files in or out, run as a job."""
        cursor = self._cursor()
        backend = cursor[0].backend if cursor is not None else None
        if cursor is None or backend is None:
            return
        ask_copy(self, member_target(backend, cursor[0].host, cursor[1]))

    def action_backup(self) -> None:
        """Export the instance under the cursor to a file (streamed, with progress)."""
        cursor = self._cursor()
        backend = self.writable(cursor[0]) if cursor is not None else None
        if cursor is None or backend is None:
            return
        feed, name = cursor

        def chosen(path: Path | None) -> None:
            if path is None:
                return

            async def back_up(job: Job) -> None:
                await backend.backup(
                    name, path, lambda sent: job.progress(sent, None, f"{human_bytes(sent)} written")
                )

            run_job(
                self,
                f"backup {name} to {path.name}",
                feed.host.name,
                back_up,
                unit="bytes",
                done=f"{name} backed up to {path}.",
            )

        default = Path.cwd() / f"{name}.tar.gz"
        self.app.push_screen(
            FormScreen(
                "Back up", [Field("path", "File to write", str(default), str(default))], _new_file, "Back up"
            ),
            chosen,
        )

    def action_import_backup(self) -> None:
        """Make an instance on `host` from a backup file (under its own name or a new one)."""
        backend = self.writable(self.home)
        if backend is None:
            return

        def chosen(values: tuple[Path, str | None] | None) -> None:
            if values is not None:
                path, name = values

                async def restore(job: Job) -> None:
                    job.progress(0, None, f"sending {path.name} to LXD…")
                    made = await backend.import_backup(path, name)
                    job.detail = f"made {made.name}"
                    if made.dropped:
                        job.detail += f" without {len(made.dropped)} forward(s)"
                        self.notify(
                            f"{made.name} is made without the forward(s) {'; '.join(made.dropped)}.",
                            title=f"Imported {made.name} without forwards",
                            severity="warning",
                            timeout=15,
                        )

                run_job(
                    self,
                    f"import {path.name}",
                    self.host.name,
                    restore,
                    done=f"Imported {path.name}.",
                    after=self.refresh_now,
                )

        fields = [
            Field("path", "Backup file", "alice.tar.gz"),
            Field("name", "New name (empty: as saved)", "alice-2"),
        ]
        self.app.push_screen(
            FormScreen(f"Import a backup on {self.host.name}", fields, _existing_file, "Import"), chosen
        )

    async def action_shell(self) -> None:
        """A shell in the instance under the cursor: the console steps aside until it exits."""
        cursor = self._cursor()
        backend = self.writable(cursor[0]) if cursor is not None else None
        if cursor is None or backend is None:
            return
        name = cursor[1]
        try:
            argv = member_shell(backend, name)
        except BerthError as exc:
            self.notify(str(exc), severity="error")
            return
        await run_in_terminal(self, argv)

    def action_logs(self) -> None:
        """The console log and LXD's log of the instance under the cursor, searchable; LXD's log
        alone, saying so, where LXD has no console log to give (a running instance's, on 5.0)."""
        cursor = self._cursor()
        backend = cursor[0].backend if cursor is not None else None
        if cursor is None or backend is None:
            return
        feed, name = cursor

        async def job() -> None:
            log = await backend.instance_log(name)
            try:
                console: list[str] | None = await backend.console_log(name)
            except BerthError as exc:
                console, why = None, exc.message.rstrip(".")
            lxd_log = [LogLine("── lxd log (lxc.log) ──", "system"), *(LogLine(t) for t in log)]
            if console is None:
                shown = f"{name} has no console log to read ({why}); this is LXD's log of it"
                lines = [LogLine(f"{shown}.", "system"), *lxd_log]
                self.notify(f"{shown} instead.", timeout=6)
                title = f"lxd log (no console log) · {name} · {feed.host.name}"
            else:
                lines = [LogLine("── console ──", "system"), *(LogLine(t) for t in console), *lxd_log]
                title = f"console and lxd log · {name} · {feed.host.name}"
            self.app.push_screen(LogScreen(title, lines=lines, source_name=name))

        self._run("read the logs", job)


def _new_file(values: dict[str, str]) -> Path:
    path = Path(values["path"]).expanduser()
    if path.exists():
        raise Invalid(f"{path} exists already; berth does not overwrite it.", "Give another file name.")
    if not path.parent.is_dir():
        raise Invalid(f"No folder {path.parent}.")
    return path


def _existing_file(values: dict[str, str]) -> tuple[Path, str | None]:
    path = Path(values["path"]).expanduser()
    if not path.is_file():
        raise Invalid(f"No file {path}.")
    return path, values["name"] or None
