"""One member instance's keys, port forwards and snapshots, each in a modal table with its keys."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label

from backends.config import Config, HostConfig
from backends.errors import BerthError, Invalid
from backends.lxd import LxdBackend
from backends.parse_addresses import IP_ADDRESS, PORT, PROTOCOL, parse_port, parse_protocol
from backends.parse_keys import KEYS, read_keys
from backends.units import YES_NO, parse_yes_no
from tui.acting import permitted, run_action
from tui.panes.member_rows import (
    FORWARD_COLUMNS,
    KEY_COLUMNS,
    SNAPSHOT_COLUMNS,
    forward_row,
    key_row,
    snapshot_row,
)
from tui.screens.confirm import ConfirmScreen
from tui.screens.form import Field, FormScreen
from tui.verbs import bindings
from tui.widgets.resource_table import ResourceTable
from tui.widgets.table_model import Column, Row


class DetailScreen(ModalScreen[None]):
    """A table of one instance's things (`rows()` reads them), reloaded after every change."""

    BINDINGS = bindings("detail")
    TITLE_TEXT = ""
    COLUMNS: Sequence[Column] = ()

    def __init__(self, backend: LxdBackend, name: str) -> None:
        super().__init__(classes="detail")
        self.backend = backend
        self.instance = name
        self.loads = 0

    def compose(self) -> ComposeResult:
        """The title, the table and a line of keys."""
        with Vertical(classes="dialog wide"):
            yield Label(f"{self.TITLE_TEXT} · {self.instance}", classes="dialog-title", markup=False)
            yield ResourceTable(self.COLUMNS, id="detail-table", groupable=False, empty_message="None yet.")
        yield Footer()

    @property
    def table(self) -> ResourceTable:
        """The table of things."""
        return self.query_one("#detail-table", ResourceTable)

    def on_mount(self) -> None:
        """Read the rows and focus the table."""
        self.table.focus()
        self.reload()

    async def rows(self) -> Mapping[str, Row]:
        """The rows to show, keyed by id; each screen reads its own."""
        raise NotImplementedError

    @work(exclusive=True, group="detail")
    async def reload(self) -> None:
        """Read the rows again."""
        try:
            self.table.update_rows(await self.rows())
        except BerthError as exc:
            self.table.empty_message = str(exc)
            self.table.update_rows({})
        self.loads += 1

    def run(self, label: str, job: Callable[[], Awaitable[object]], done: str) -> None:
        """Run a change off the UI (`label` says what it tries, `done` what it did); say how it
        went, then reload.

        The app runs it, not this screen: closing the screen must not cancel a restore or a
        removal halfway through waiting for LXD (it would go on there, unreported)."""

        def reload() -> None:
            if self.is_attached:
                self.reload()

        run_action(self.app, label, job, done=done, after=reload, group="detail-actions")

    def ask(self, question: str, targets: list[str], verb: str, job: Callable[[], Awaitable[object]]) -> None:
        """Confirm first, then `run`."""
        self.app.push_screen(
            ConfirmScreen(question, targets, verb),
            lambda answer: (
                self.run(f"{verb.lower()} {', '.join(targets)}", job, f"{verb}: {', '.join(targets)}")
                if answer and answer[0]
                else None
            ),
        )

    def acting_hosts(self) -> list[HostConfig]:
        """The host of the instance: the one its backend is on (in the all-hosts view, not always
        the current host)."""
        config = getattr(self.app, "config", None)
        inventory = config.hosts if isinstance(config, Config) else []
        known = [getattr(self.app, "current_host", None), *inventory]
        return [h for h in known if isinstance(h, HostConfig) and h.name == self.backend.host_name][:1]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Looking is allowed read-only; the verbs that change something are hidden."""
        return permitted(self, action, parameters)

    def action_close(self) -> None:
        """Back to the pane."""
        self.dismiss(None)


class KeysScreen(DetailScreen):
    """The SSH keys in the instance's /root/.ssh/authorized_keys: `a` adds one, `d` removes."""

    BINDINGS = bindings("keys")
    TITLE_TEXT = "SSH keys"
    COLUMNS = KEY_COLUMNS

    def __init__(self, backend: LxdBackend, name: str) -> None:
        super().__init__(backend, name)
        self.keys: list[str] = []

    async def rows(self) -> Mapping[str, Row]:
        """One row per key line."""
        self.keys = await self.backend.keys(self.instance)
        return {str(i): key_row(k) for i, k in enumerate(self.keys)}

    def action_add(self) -> None:
        """Ask for a key (its text, or a .pub file to read) and add it."""

        def submit(values: dict[str, str]) -> tuple[str, ...]:
            keys = read_keys(values["key"])
            if not keys:
                raise Invalid("Paste a public key or give the path of a .pub file.")
            return keys

        def chosen(keys: tuple[str, ...] | None) -> None:
            if keys:
                several = len(keys) > 1
                self.run(
                    f"add {len(keys) if several else 'a'} key{'s' * several} to {self.instance}",
                    lambda: self._add(keys),
                    f"{len(keys)} keys added" if several else "Key added",
                )

        field = Field("key", "Public keys (pasted, or a .pub file)", grammar=KEYS, lines=3)
        self.app.push_screen(FormScreen("Add SSH key", [field], submit, "Add"), chosen)

    async def _add(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            await self.backend.add_key(self.instance, key)

    def action_remove(self) -> None:
        """Remove the key under the cursor (or the marked ones), after asking."""
        chosen = [self.keys[int(i)] for i in self.table.selected_ids()]
        if chosen:
            self.ask(
                f"Remove {len(chosen)} key(s) from {self.instance}?",
                [str(key_row(k).cells["comment"] or key_row(k).cells["key"]) for k in chosen],
                "Remove",
                lambda: self._remove(chosen),
            )

    async def _remove(self, keys: list[str]) -> None:
        for key in keys:
            await self.backend.remove_key(self.instance, key)


class ForwardsScreen(DetailScreen):
    """The instance's port forwards (LXD proxy devices): `a` adds one, `d` removes."""

    BINDINGS = bindings("forwards")
    TITLE_TEXT = "Port forwards"
    COLUMNS = FORWARD_COLUMNS

    async def rows(self) -> Mapping[str, Row]:
        """One row per proxy device."""
        instance = await self.backend.member(self.instance)
        return {f.device: forward_row(f) for f in instance.forwards}

    def action_add(self) -> None:
        """Ask for host port, container port, protocol and listen address; add the forward."""

        def submit(values: dict[str, str]) -> tuple[int, int, str, str]:
            return (
                parse_port(values["host_port"]),
                parse_port(values["port"]),
                parse_protocol(values["protocol"]),
                values["listen"] or "0.0.0.0",
            )

        def chosen(spec: tuple[int, int, str, str] | None) -> None:
            if spec:
                host_port, port, protocol, listen = spec
                forward = f"{listen}:{host_port} → {port}/{protocol}"
                self.run(
                    f"add forward {forward}",
                    lambda: self.backend.add_forward(
                        self.instance, host_port, port, protocol=protocol, listen_address=listen
                    ),
                    f"Forward {forward} added",
                )

        fields = [
            Field("host_port", "Host port", grammar=PORT, required=True),
            Field("port", "Container port", grammar=PORT, required=True),
            Field("protocol", "Protocol", value="tcp", grammar=PROTOCOL),
            Field("listen", "Listen address on the host", value="0.0.0.0", grammar=IP_ADDRESS),
        ]
        self.app.push_screen(FormScreen("Add port forward", fields, submit, "Add"), chosen)

    def action_remove(self) -> None:
        """Remove the forward under the cursor (or the marked ones), after asking."""
        devices = self.table.selected_ids()
        if devices:
            shown = [str(self.table.rows[d].cells["host"]) for d in devices]
            self.ask(
                f"Remove {len(devices)} forward(s) of {self.instance}?",
                shown,
                "Remove",
                lambda: self._remove(devices),
            )

    async def _remove(self, devices: list[str]) -> None:
        for device in devices:
            await self.backend.remove_forward(self.instance, device)


class SnapshotsScreen(DetailScreen):
    """The instance's snapshots: `c` take one, `R` restore, `d` delete, `S` schedule and expiry."""

    BINDINGS = bindings("snapshots")
    TITLE_TEXT = "Snapshots"
    COLUMNS = SNAPSHOT_COLUMNS

    async def rows(self) -> Mapping[str, Row]:
        """One row per snapshot, newest first."""
        now = time.time()
        return {s.name: snapshot_row(s, now) for s in await self.backend.snapshots(self.instance)}

    def action_take(self) -> None:
        """Ask for a name (empty: a generated one) and take the snapshot."""

        def submit(values: dict[str, str]) -> tuple[str | None, bool]:
            # Empty: not stateful, which needs CRIU on the host.
            stateful = parse_yes_no(values["stateful"]) if values["stateful"] else False
            return values["name"] or None, stateful

        def chosen(answer: tuple[str | None, bool] | None) -> None:
            if answer is not None:
                name, stateful = answer
                self.run(
                    f"snapshot {self.instance}",
                    lambda: self.backend.snapshot(self.instance, name, stateful=stateful),
                    "Snapshot taken",
                )

        fields = [
            Field("name", "Name (empty: generated)", "before-upgrade"),
            Field("stateful", "Stateful (y/n)", value="n", grammar=YES_NO),
        ]
        self.app.push_screen(FormScreen("Take a snapshot", fields, submit, "Snapshot"), chosen)

    def action_restore(self) -> None:
        """Restore the snapshot under the cursor, after asking."""
        name = self.table.cursor_id()
        if name:
            self.ask(
                f"Restore {self.instance} to snapshot {name!r}? Changes since then are lost.",
                [name],
                "Restore",
                lambda: self.backend.restore(self.instance, name),
            )

    def action_remove(self) -> None:
        """Delete the snapshots marked (or under the cursor), after asking."""
        names = self.table.selected_ids()
        if names:
            self.ask(
                f"Delete {len(names)} snapshot(s) of {self.instance}?",
                names,
                "Delete",
                lambda: self._delete(names),
            )

    async def _delete(self, names: list[str]) -> None:
        for name in names:
            await self.backend.delete_snapshot(self.instance, name)

    def action_schedule(self) -> None:
        """Set `snapshots.schedule` (cron or @daily…) and `snapshots.expiry` (e.g. 2w)."""

        def chosen(values: dict[str, str] | None) -> None:
            if values is not None:
                self.run(
                    f"set the snapshot schedule of {self.instance}",
                    lambda: self.backend.set_schedule(
                        self.instance, values["schedule"], values["expiry"] or None
                    ),
                    "Snapshot schedule set",
                )

        fields = [
            Field("schedule", "Schedule (cron, @hourly, @daily; empty: none)", "@daily"),
            Field("expiry", "Keep for (e.g. 2w, 7d; empty: forever)", "2w"),
        ]
        self.app.push_screen(FormScreen("Scheduled snapshots", fields, lambda v: v, "Set"), chosen)
