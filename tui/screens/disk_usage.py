"""`:df`: what takes the disk on the hosts on show (one table, a HOST column for all hosts), kind
by kind with its size and what a prune gives back; `P` prunes the kind under the cursor after
listing exactly what goes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Label

from backends.config import Config, HostConfig
from backends.docker import DockerBackend
from backends.docker_disk import KINDS, DiskKind, DiskUsage
from backends.errors import BerthError
from backends.hosts import Sessions
from tui.acting import permitted, run_action, writable
from tui.disk_words import nothing_to_prune, prune_preview, prune_question, prune_summary
from tui.format import human_bytes, parse_bytes
from tui.panes.container_rows import HOST_COLUMN, text_number
from tui.screens.confirm import ConfirmScreen
from tui.verbs import bindings
from tui.widgets.resource_table import ResourceTable
from tui.widgets.table_model import CellValue, Column, Row

DISK_COLUMNS: Sequence[Column] = (
    Column("kind", "KIND", width=12),
    Column("count", "COUNT", width=6, justify="right"),
    Column("active", "ACTIVE", width=6, justify="right"),
    Column("size", "SIZE", width=10, justify="right", sort=text_number(parse_bytes)),
    Column("reclaimable", "RECLAIMABLE", width=12, justify="right", sort=text_number(parse_bytes)),
)


def kind_row(kind: DiskKind, host: str | None, rank: int) -> Row:
    """One kind's row (a host cell when all hosts are on show)."""
    cells: dict[str, CellValue] = {
        "kind": kind.kind,
        "count": str(len(kind.items)),
        "active": str(kind.active),
        "size": human_bytes(kind.size),
        "reclaimable": human_bytes(kind.reclaimable),
    }
    if host is not None:
        cells["host"] = host
    return Row(cells, rank=rank)


class DiskUsageScreen(Screen[None]):
    """The disk usage of `hosts`, read when opened, after each prune and on `r`."""

    BINDINGS = bindings("disk")

    def __init__(
        self, config: Config, hosts: Sequence[HostConfig], sessions: Sessions, *, all_hosts: bool = False
    ) -> None:
        super().__init__(classes="disk-screen")
        self.config = config
        self.hosts = list(hosts)
        self.sessions = sessions
        self.all_hosts = all_hosts
        self.backends: dict[str, DockerBackend] = {}
        """Each host's backend once reached (its disk usage cache with it)."""
        self.usage: dict[str, DiskUsage] = {}
        """Each host's disk usage as last read."""
        self.errors: dict[str, str] = {}
        """Why a host's disk usage could not be read."""

    def compose(self) -> ComposeResult:
        """Title, table, footer."""
        where = "all hosts" if self.all_hosts else self.hosts[0].name
        yield Label(f"disk usage · {where}", classes="log-title", markup=False)
        yield ResourceTable(
            (HOST_COLUMN, *DISK_COLUMNS) if self.all_hosts else DISK_COLUMNS,
            id="disk-table",
            groupable=False,
            empty_message="Reading the disk usage…",
        )
        yield Footer()

    @property
    def table(self) -> ResourceTable:
        """The table of kinds."""
        return self.query_one("#disk-table", ResourceTable)

    def on_mount(self) -> None:
        """First read."""
        self.table.focus()
        self.action_reload(fresh=False)

    async def on_unmount(self) -> None:
        """Close the backends this screen opened."""
        for backend in self.backends.values():
            await backend.close()

    def acting_hosts(self) -> list[HostConfig]:
        """The hosts a prune here may act on (read-only ones hide `P`)."""
        return self.hosts

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No prune in read-only mode."""
        return permitted(self, action, parameters)

    async def backend(self, host: HostConfig) -> DockerBackend:
        """The host's backend, reached the first time it is needed."""
        if host.name not in self.backends:
            self.backends[host.name] = await DockerBackend.for_session(self.sessions.get(host))
        return self.backends[host.name]

    def action_reload(self, fresh: bool = True) -> None:
        """Read every host's disk usage (at once) and show it (`fresh`: not from the last few
        seconds' read)."""

        async def one(host: HostConfig) -> None:
            try:
                self.usage[host.name] = await (await self.backend(host)).disk_usage(fresh=fresh)
                self.errors.pop(host.name, None)
            except BerthError as exc:
                self.usage.pop(host.name, None)
                self.errors[host.name] = str(exc)

        async def job() -> None:
            await asyncio.gather(*(one(h) for h in self.hosts))
            self.show()

        run_action(self, "disk usage", job)

    def show(self) -> None:
        """Draw the rows: a host that could not be read says why in its row."""
        rows: dict[str, Row] = {}
        for index, host in enumerate(self.hosts):
            shown = host.name if self.all_hosts else None
            if host.name in self.errors:
                cells = {"kind": self.errors[host.name], **({"host": host.name} if shown else {})}
                rows[f"{host.name}/"] = Row(cells, rank=index * len(KINDS))
                continue
            usage = self.usage.get(host.name)
            if usage is None:
                continue
            for position, kind in enumerate(KINDS):
                rank = index * len(KINDS) + position
                rows[f"{host.name}/{kind}"] = kind_row(usage.kinds[kind], shown, rank)
        self.table.update_rows(rows)

    def action_prune(self) -> None:
        """Prune the kind under the cursor on its host: a fresh preview first, listing exactly
        what goes with its sizes, then the question."""
        key = self.table.cursor_id() or ""
        host_name, _, kind_name = key.partition("/")
        host = next((h for h in self.hosts if h.name == host_name), None)
        if host is None or kind_name not in KINDS:
            return
        why_not = self.errors.get(host.name) or f"No Docker on {host.name}."
        backend = writable(self, self.config, host, self.backends.get(host.name), why_not)
        if backend is None:
            return

        async def preview() -> None:
            kind = (await backend.disk_usage(fresh=True)).kinds[kind_name]
            if not kind.prunable:
                self.notify(nothing_to_prune(kind, host.name), timeout=3)
                self.action_reload()
                return

            async def prune() -> None:
                try:
                    self.notify(prune_summary(await backend.prune(kind), host.name))
                finally:
                    self.action_reload()

            def answered(answer: tuple[bool, bool] | None) -> None:
                if answer and answer[0]:
                    run_action(self, f"prune {kind_name}", prune)

            question = ConfirmScreen(prune_question(kind, host.name), prune_preview(kind), "Prune")
            self.app.push_screen(question, answered)

        run_action(self, f"prune {kind_name}", preview)

    def action_close(self) -> None:
        """Back to the panes."""
        self.dismiss(None)
