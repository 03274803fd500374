"""The Members pane: a host's LXD instances, one (or more) per member of a community server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from textual import work
from textual.app import ComposeResult

from backends.config import Config, HostConfig
from backends.errors import BerthError, Invalid
from backends.hosts import Sessions
from backends.lxd import LxdBackend
from backends.lxd_models import MemberInstance, MemberSpec
from backends.shells import member_shell
from backends.streams import LogLine
from tui.acting import permitted, run_action, run_in_terminal, run_job, shown, writable
from tui.format import human_bytes
from tui.jobs import Job
from tui.panes.container_rows import HOST_COLUMN
from tui.panes.member_rows import MEMBER_COLUMNS, host_error_row, member_row
from tui.panes.table_pane import TablePane
from tui.screens.confirm import ConfirmScreen
from tui.screens.form import Field, FormScreen
from tui.screens.logs import LogScreen
from tui.screens.member_details import DetailScreen, ForwardsScreen, KeysScreen, SnapshotsScreen
from tui.verbs import bindings
from tui.widgets.resource_table import ResourceTable
from tui.widgets.table_model import Row

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


@dataclass(eq=False)
class MemberFeed:
    """One host's LXD as the pane reads it: its backend once reached, its instances, and why they
    cannot be read (until the first read: that it has not been, so the first read, even of no
    instance at all, replaces the "Connecting…" line)."""

    host: HostConfig
    backend: LxdBackend | None = None
    instances: dict[str, MemberInstance] = field(default_factory=dict)
    offline: str = CONNECTING
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to have the host read again at once."""


class MembersPane(TablePane):
    """Member instances of one host (or, in the all-hosts view, of every host, with a HOST
    column), grouped by member; actions apply to the marked rows, each on its own host."""

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
        super().__init__(id="pane-members", classes="pane members")
        self.host = host
        self.config = config
        self.sessions = sessions
        self.all_hosts = bool(all_hosts)
        self.feeds = [MemberFeed(h) for h in all_hosts] or [MemberFeed(host)]
        self.home = next((f for f in self.feeds if f.host.name == host.name), self.feeds[0])
        """The feed of `host`: where new instances go."""
        self.where: dict[str, tuple[MemberFeed, str]] = {}
        """Row key -> the host feed and instance name it stands for."""
        self.reads = 0

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

    def on_mount(self) -> None:
        """Reach each host's LXD and keep the list current."""
        for feed in self.feeds:
            self.watch_instances(feed)

    async def on_unmount(self) -> None:
        """Close the connections to LXD."""
        self.workers.cancel_group(self, "lxd")
        for feed in self.feeds:
            if feed.backend is not None:
                await feed.backend.close()

    @property
    def offline(self) -> str:
        """Why `host`'s instances cannot be read ("" when they can)."""
        return self.home.offline

    # Live data ---------------------------------------------------------------------------------

    @work(group="lxd", exit_on_error=False)
    async def watch_instances(self, feed: MemberFeed) -> None:
        """Read a host's instances when the pane shows, after each action, and every 5 s while it
        is shown.

        The next read is scheduled only after the last one ended, so a slow host never piles
        reads up (nor holds the other hosts' up: each host has its own reader).
        """
        session = self.sessions.get(feed.host)
        while True:
            # Hidden: no LXD traffic at all (most starts never show this pane).
            while not feed.wake.is_set() and not shown(self):
                await asyncio.sleep(1.0)
            feed.wake.clear()
            version = session.version
            if feed.backend is None:
                try:
                    feed.backend = await LxdBackend.for_session(session)
                except BerthError as exc:
                    self._set_offline(feed, str(exc))
                    # A reconnect or a trusted key wakes us; a local LXD may simply start later.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(session.changed(version), POLL_SECONDS)
                    continue
            try:
                found = await feed.backend.members()
            except BerthError as exc:
                self._set_offline(feed, str(exc))
            else:
                feed.instances = {i.name: i for i in found}
                self._set_offline(feed, "")
                self.reads += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.wake.wait(), POLL_SECONDS)

    def refresh_now(self) -> None:
        """Read the lists again at once (after an action)."""
        for feed in self.feeds:
            feed.wake.set()

    def _key(self, feed: MemberFeed, name: str) -> str:
        return f"{feed.host.name}/{name}" if self.all_hosts else name

    def _show(self) -> None:
        """Draw every host's instances; in the all-hosts view a host that cannot be read has a
        row saying so (one host alone says it where its rows would be)."""
        rows: dict[str, Row] = {}
        self.where = {}
        for feed in self.feeds:
            if self.all_hosts and feed.offline and feed.offline != CONNECTING:
                rows[self._key(feed, "!")] = host_error_row(feed.host.name, feed.offline)
            for name, instance in feed.instances.items():
                key = self._key(feed, name)
                self.where[key] = (feed, name)
                rows[key] = member_row(instance, feed.host.name if self.all_hosts else None)
        self.table.update_rows(rows)

    def _set_offline(self, feed: MemberFeed, why: str) -> None:
        changed = why != feed.offline
        feed.offline = why
        if changed and feed is self.home:
            self.set_class(bool(why), "-offline")
            self.table.empty_message = why or f"No instances on {self.host.name}; n makes one."
        if self.all_hosts and changed and not why:
            self.table.empty_message = "No instances on any host; n makes one."
        self._show()

    # Guards and running --------------------------------------------------------------------------

    def acting_hosts(self) -> list[HostConfig]:
        """The hosts the verbs act on (for read-only mode)."""
        return [feed.host for feed in self.feeds]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No verb that changes state in read-only mode."""
        return permitted(self, action, parameters)

    def _writable(self, feed: MemberFeed) -> LxdBackend | None:
        """The backend to act through on `feed`'s host; None (and a notification saying why) when
        acting is not allowed there."""
        why_not = feed.offline or f"No LXD on {feed.host.name}."
        return writable(self, self.config, feed.host, feed.backend, why_not)

    def targets(self) -> list[tuple[MemberFeed, str]]:
        """The marked instances, else the one under the cursor (a member heading: all of theirs),
        each with the host feed it is on."""
        return [self.where[key] for key in self.table.selected_ids() if key in self.where]

    def _run(self, label: str, job: Callable[[], Awaitable[object]], done: str = "") -> None:
        """Run an LXD call off the UI; failures become one notification; the list is read again."""
        run_action(self, label, job, done=done, after=self.refresh_now, group="member-actions", timeout=10)

    # Actions -------------------------------------------------------------------------------------

    def action_new(self) -> None:
        """The new-member form; the instance is made (with its keys and limits) when it closes."""
        backend = self._writable(self.home)
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

    def _backends(self, chosen: Sequence[tuple[MemberFeed, str]]) -> dict[str, LxdBackend] | None:
        """The backend of each host among `chosen`, by host name; None (and a notification) if
        one of them may not be acted on."""
        backends: dict[str, LxdBackend] = {}
        for feed in {id(f): f for f, _name in chosen}.values():
            backend = self._writable(feed)
            if backend is None:
                return None
            backends[feed.host.name] = backend
        return backends

    def _each(self, label: str, action_for: Callable[[MemberInstance], str]) -> None:
        """Apply `action_for(instance)` to each target on its host, one after the other."""
        chosen = self.targets()
        backends = self._backends(chosen)
        if backends is None or not chosen:
            return
        actions = [(backends[f.host.name], name, action_for(f.instances[name])) for f, name in chosen]

        async def job() -> None:
            for backend, name, action in actions:
                await backend.act(name, action)

        self._run(label, job, f"{label}: {', '.join(name for _f, name in chosen)}")

    def action_delete(self) -> None:
        """Delete the targets, after a question naming them and their snapshots."""
        chosen = self.targets()
        backends = self._backends(chosen)
        if backends is None or not chosen:
            return
        names = [name for _f, name in chosen]
        shown = [
            f"{name} on {f.host.name} ({f.instances[name].member or 'unowned'}, "
            f"{f.instances[name].snapshots} snapshots)"
            for f, name in chosen
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

    def _cursor(self) -> tuple[MemberFeed, str] | None:
        key = self.table.cursor_id()
        found = self.where.get(key or "")
        return found if found is not None and found[1] in found[0].instances else None

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

    def action_backup(self) -> None:
        """Export the instance under the cursor to a file (streamed, with progress)."""
        cursor = self._cursor()
        backend = self._writable(cursor[0]) if cursor is not None else None
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
        backend = self._writable(self.home)
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
        backend = self._writable(cursor[0]) if cursor is not None else None
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
