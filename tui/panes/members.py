"""The Members pane: a host's LXD instances, one (or more) per member of a community server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding

from backends.audit import audit
from backends.config import Config, HostConfig
from backends.errors import BerthError, Invalid
from backends.hosts import Sessions
from backends.lxd import LxdBackend
from backends.lxd_models import MemberInstance, MemberSpec
from backends.streams import LogLine
from tui.acting import permitted, run_action, run_in_terminal, run_job, shown, writable
from tui.format import human_bytes
from tui.jobs import Job
from tui.panes.member_rows import MEMBER_COLUMNS, member_row
from tui.panes.table_pane import TablePane
from tui.screens.confirm import ConfirmScreen
from tui.screens.form import Field, FormScreen
from tui.screens.logs import LogScreen
from tui.screens.member_details import DetailScreen, ForwardsScreen, KeysScreen, SnapshotsScreen
from tui.widgets.resource_table import ResourceTable

POLL_SECONDS = 5.0
"""How often the list is read again while the pane is on screen (and after every action)."""

NEW_MEMBER_FIELDS = (
    Field("name", "Instance name", "alice"),
    Field("member", "Member", "alice"),
    Field("image", "Image (alias or fingerprint on this host)", "debian/12"),
    Field("keys", "SSH public key, or .pub files (comma-separated)", "~/keys/alice.pub"),
    Field("cpu", "CPUs (optional)", "2"),
    Field("memory", "Memory (optional)", "1GiB"),
    Field("disk", "Root disk size (optional)", "10GiB"),
    Field("contact", "Contact (optional)", "alice@example.org"),
)


def read_keys(text: str) -> tuple[str, ...]:
    """Key lines from a form field: a pasted key, or comma-separated paths of .pub files."""
    if not text:
        return ()
    if text.startswith(("ssh-", "ecdsa-", "sk-")):
        return (text,)
    keys: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        path = Path(part).expanduser()
        if not path.is_file():
            raise Invalid(f"No key file {part!r}.", "Paste the key itself, or give .pub files.")
        keys += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return tuple(keys)


def member_spec(values: dict[str, str]) -> MemberSpec:
    """The new-member form's values as a spec; the backend checks keys, image and limits."""
    for required in ("name", "member", "image"):
        if not values[required]:
            raise Invalid(f"The {required} is required.")
    cpu = values["cpu"]
    if cpu and not cpu.isdigit():
        raise Invalid(f"CPUs must be a whole number, not {cpu!r}.")
    return MemberSpec(
        values["name"],
        values["member"],
        values["image"],
        keys=read_keys(values["keys"]),
        contact=values["contact"] or None,
        cpu=int(cpu) if cpu else None,
        memory=values["memory"] or None,
        disk=values["disk"] or None,
    )


CONNECTING = "Connecting…"


class MembersPane(TablePane):
    """Member instances of one host, grouped by member; actions apply to the marked rows."""

    TABLE_ID = "members-table"
    BINDINGS = [
        Binding("n", "new", "New member", id="members.new"),
        Binding("s", "act('stop')", "Stop", id="members.stop"),
        Binding("S", "act('start')", "Start", id="members.start"),
        Binding("r", "act('restart')", "Restart", id="members.restart"),
        Binding("p", "freeze", "Freeze", id="members.freeze"),
        Binding("d", "delete", "Delete", id="members.delete"),
        Binding("k", "details('keys')", "Keys", id="members.keys"),
        Binding("f", "details('forwards')", "Forwards", id="members.forwards"),
        Binding("z", "details('snapshots')", "Snapshots", id="members.snapshots"),
        Binding("b", "backup", "Backup", id="members.backup"),
        Binding("I", "import_backup", "Import", show=False, id="members.import"),
        Binding("e", "shell", "Shell", id="members.shell"),
        Binding("l", "logs", "Console log", id="members.logs"),
    ]

    def __init__(self, host: HostConfig, config: Config, sessions: Sessions) -> None:
        super().__init__(id="pane-members", classes="pane members")
        self.host = host
        self.config = config
        self.sessions = sessions
        self.backend: LxdBackend | None = None
        self.instances: dict[str, MemberInstance] = {}
        # Why the list cannot be read: until the first read, that it has not been (so the first
        # read, even of no instance at all, replaces the "Connecting…" line).
        self.offline = CONNECTING
        self.reads = 0
        self._wake = asyncio.Event()

    def compose(self) -> ComposeResult:
        """The instances table, grouped by member."""
        yield ResourceTable(
            MEMBER_COLUMNS,
            id="members-table",
            grouped=True,
            group_label="member: {group}",
            no_group_label="(unowned)",
            empty_message=CONNECTING,
        )

    def on_mount(self) -> None:
        """Reach the host's LXD and keep the list current."""
        self.watch_instances()

    async def on_unmount(self) -> None:
        """Close the connection to LXD."""
        self.workers.cancel_group(self, "lxd")
        if self.backend is not None:
            await self.backend.close()

    # Live data ---------------------------------------------------------------------------------

    @work(group="lxd", exit_on_error=False)
    async def watch_instances(self) -> None:
        """Read the instances when the pane shows, after each action, and every 5 s while it is shown.

        The next read is scheduled only after the last one ended, so a slow host never piles
        reads up.
        """
        session = self.sessions.get(self.host)
        while True:
            # Hidden: no LXD traffic at all (most starts never show this pane).
            while not self._wake.is_set() and not shown(self):
                await asyncio.sleep(1.0)
            self._wake.clear()
            version = session.version
            if self.backend is None:
                try:
                    self.backend = await LxdBackend.for_session(session)
                except BerthError as exc:
                    self._set_offline(str(exc))
                    # A reconnect or a trusted key wakes us; a local LXD may simply start later.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(session.changed(version), POLL_SECONDS)
                    continue
            try:
                found = await self.backend.members()
            except BerthError as exc:
                self._set_offline(str(exc))
            else:
                self._set_offline("")
                self.instances = {i.name: i for i in found}
                self.table.update_rows({name: member_row(i) for name, i in self.instances.items()})
                self.reads += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    def refresh_now(self) -> None:
        """Read the list again at once (after an action)."""
        self._wake.set()

    def _set_offline(self, why: str) -> None:
        if why == self.offline:
            return
        self.offline = why
        self.set_class(bool(why), "-offline")
        self.border_subtitle = why
        self.table.empty_message = why or f"No instances on {self.host.name}; n makes one."

    # Guards and running --------------------------------------------------------------------------

    def acting_hosts(self) -> list[HostConfig]:
        """The host the verbs act on (for read-only mode)."""
        return [self.host]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No verb that changes state in read-only mode."""
        return permitted(self, action, parameters)

    def _writable(self) -> LxdBackend | None:
        """The backend to act through; None (and a notification saying why) when acting is not allowed."""
        why_not = self.offline or f"No LXD on {self.host.name}."
        return writable(self, self.config, self.host, self.backend, why_not)

    def targets(self) -> list[str]:
        """The marked instances, else the one under the cursor (a member heading: all of theirs)."""
        return [name for name in self.table.selected_ids() if name in self.instances]

    def _run(self, label: str, job: Callable[[], Awaitable[object]], done: str = "") -> None:
        """Run an LXD call off the UI; failures become one notification; the list is read again."""
        run_action(self, label, job, done=done, after=self.refresh_now, group="member-actions", timeout=10)

    # Actions -------------------------------------------------------------------------------------

    def action_new(self) -> None:
        """The new-member form; the instance is made (with its keys and limits) when it closes."""
        backend = self._writable()
        if backend is None:
            return

        def chosen(spec: MemberSpec | None) -> None:
            if spec is None:
                return
            self.notify(f"Creating {spec.name} for {spec.member}…", timeout=3)
            self._run(
                f"create {spec.name}",
                lambda: backend.create(spec),
                f"{spec.name} is ready for {spec.member}.",
            )

        self.app.push_screen(
            FormScreen("New member container", NEW_MEMBER_FIELDS, member_spec, "Create"), chosen
        )

    def action_act(self, action: str) -> None:
        """start / stop / restart the targets."""
        self._each(action, lambda _name: action)

    def action_freeze(self) -> None:
        """Freeze running targets, unfreeze frozen ones."""
        self._each(
            "freeze/unfreeze", lambda name: "unfreeze" if self.instances[name].state == "Frozen" else "freeze"
        )

    def _each(self, label: str, action_for: Callable[[str], str]) -> None:
        """Apply `action_for(name)` to each target, one after the other."""
        backend = self._writable()
        names = self.targets()
        if backend is None or not names:
            return

        async def job() -> None:
            for name in names:
                await backend.act(name, action_for(name))

        self._run(label, job, f"{label}: {', '.join(names)}")

    def action_delete(self) -> None:
        """Delete the targets, after a question naming them and their snapshots."""
        backend = self._writable()
        names = self.targets()
        if backend is None or not names:
            return
        shown = [
            f"{n} ({self.instances[n].member or 'unowned'}, {self.instances[n].snapshots} snapshots)"
            for n in names
        ]

        async def job() -> None:
            for name in names:
                await backend.delete(name)

        self.app.push_screen(
            ConfirmScreen(
                f"Delete {len(names)} instance(s) on {self.host.name}, with their snapshots?", shown, "Delete"
            ),
            lambda answer: (
                self._run("delete", job, f"Deleted {', '.join(names)}.") if answer and answer[0] else None
            ),
        )

    def _cursor(self) -> str | None:
        name = self.table.cursor_id()
        return name if name in self.instances else None

    def action_details(self, what: str) -> None:
        """The keys, forwards or snapshots of the instance under the cursor (to look at them is
        allowed read-only; their verbs are not)."""
        name = self._cursor()
        if name is None or self.backend is None:
            return
        screens: dict[str, type[DetailScreen]] = {
            "keys": KeysScreen,
            "forwards": ForwardsScreen,
            "snapshots": SnapshotsScreen,
        }
        self.app.push_screen(screens[what](self.backend, name), lambda _result: self.refresh_now())

    def action_backup(self) -> None:
        """Export the instance under the cursor to a file (streamed, with progress)."""
        name = self._cursor()
        backend = self._writable()
        if name is None or backend is None:
            return

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
                self.host.name,
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
        """Make an instance from a backup file (under its own name or a new one)."""
        backend = self._writable()
        if backend is None:
            return

        def chosen(values: tuple[Path, str | None] | None) -> None:
            if values is not None:
                path, name = values

                async def restore(job: Job) -> None:
                    job.progress(0, None, f"sending {path.name} to LXD…")
                    made = await backend.import_backup(path, name)
                    job.detail = f"made {made}"

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
        self.app.push_screen(FormScreen("Import a backup", fields, _existing_file, "Import"), chosen)

    async def action_shell(self) -> None:
        """A shell in the instance under the cursor: the console steps aside until it exits."""
        name = self._cursor()
        backend = self._writable()
        if name is None or backend is None:
            return
        try:
            argv = backend.shell_argv(name)
        except BerthError as exc:
            self.notify(str(exc), severity="error")
            return
        audit(self.host.name, "member.shell", [name])
        await run_in_terminal(self, argv)

    def action_logs(self) -> None:
        """The console log and LXD's log of the instance under the cursor, searchable."""
        name = self._cursor()
        backend = self.backend
        if name is None or backend is None:
            return

        async def job() -> None:
            console, log = await asyncio.gather(backend.console_log(name), backend.instance_log(name))
            lines = [LogLine("── console ──", "system"), *(LogLine(t) for t in console)]
            lines += [LogLine("── lxd log ──", "system"), *(LogLine(t) for t in log)]
            self.app.push_screen(
                LogScreen(f"console · {name} · {self.host.name}", lines=lines, source_name=name)
            )

        self._run("logs", job)


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
