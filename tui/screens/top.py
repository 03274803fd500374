"""The processes of a container (`docker top`), refreshed while on screen."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from backends.errors import BerthError
from tui.verbs import bindings

TopSource = Callable[[], Awaitable[tuple[list[str], list[list[str]]]]]
REFRESH_SECONDS = 2.0


class TopScreen(Screen[None]):
    """A table of processes; re-read every 2 s, the next read only after the last one ended."""

    BINDINGS = bindings("top")

    def __init__(self, title: str, source: TopSource) -> None:
        super().__init__(classes="top-screen")
        self.title_text = title
        self.source = source
        self.reads = 0

    def compose(self) -> ComposeResult:
        """Title, table, footer."""
        yield Label(self.title_text, classes="log-title", markup=False)
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        """First read."""
        self.query_one(DataTable).focus()
        self.refresh_processes()

    @work(exclusive=True, group="top")
    async def refresh_processes(self) -> None:
        """Read the processes and show them."""
        table = self.query_one(DataTable)
        try:
            titles, rows = await self.source()
        except BerthError as exc:
            self.query_one(Label).update(f"{self.title_text} — {exc}")
            return
        self.reads += 1
        if [str(c.label) for c in table.columns.values()] != titles:
            table.clear(columns=True)
            table.add_columns(*titles)
        else:
            table.clear()
        table.add_rows(rows)
        self.set_timer(REFRESH_SECONDS, self.refresh_processes)

    def action_close(self) -> None:
        """Back to the pane."""
        self.dismiss(None)
