"""`:audit`: the audit log (every action that changed something), newest first, in the shared table."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Label

from backends.audit import audit_file, read_audit
from tui.verbs import bindings
from tui.widgets.resource_table import ResourceTable
from tui.widgets.table_model import Column, Row

AUDIT_LIMIT = 5000
"""How many of the last records are read: the file only grows, the screen must stay quick."""
AUDIT_COLUMNS = (
    Column("time", "TIME", 24, sort_by="place"),
    Column("user", "USER", 10),
    Column("host", "HOST", 12),
    Column("action", "ACTION", 20),
    Column("targets", "TARGETS", 24),
    Column("outcome", "OUTCOME", 24),
    Column("details", "DETAILS"),
)
_SHOWN = {"at", "user", "host", "action", "targets", "outcome"}


def audit_rows(records: Sequence[Mapping[str, Any]]) -> dict[str, Row]:
    """One row per record, keyed by its place in the file (what TIME sorts by: the screen shows
    the newest first, whatever the records' clocks say)."""
    rows = {}
    for index, record in enumerate(records):
        targets = record.get("targets") or []
        details = {k: v for k, v in record.items() if k not in _SHOWN and k != "pid"}
        rows[str(index)] = Row(
            {
                "time": str(record.get("at", "")),
                "user": str(record.get("user", "")),
                "host": str(record.get("host", "")),
                "action": str(record.get("action", "")),
                "targets": ", ".join(map(str, targets)) if isinstance(targets, list) else str(targets),
                "outcome": str(record.get("outcome", "")),
                "details": " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(details.items())),
                "place": index,
            },
        )
    return rows


class AuditScreen(Screen[None]):
    """The last records of the audit log in a `ResourceTable` (`/` filters); `r` reads it again."""

    BINDINGS = bindings("audit")

    def __init__(self) -> None:
        super().__init__(classes="audit-screen")
        self.loads = 0

    def compose(self) -> ComposeResult:
        """Title, table, footer."""
        yield Label(f"audit log · {audit_file()}", classes="log-title", markup=False)
        yield ResourceTable(
            AUDIT_COLUMNS,
            id="audit-table",
            sort_column="time",
            sort_reverse=True,
            groupable=False,
            empty_message="No action recorded yet.",
        )
        yield Footer()

    @property
    def table(self) -> ResourceTable:
        """The table of records."""
        return self.query_one("#audit-table", ResourceTable)

    def on_mount(self) -> None:
        """Focus the table and read the log."""
        self.table.focus()
        self.action_reload()

    def action_reload(self) -> None:
        """Read the end of the log again (off the UI thread)."""
        self._read()

    @work(thread=True, exclusive=True, group="audit")
    def _read(self) -> None:
        rows = audit_rows(read_audit(AUDIT_LIMIT))
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: dict[str, Row]) -> None:
        self.table.update_rows(rows)
        self.loads += 1

    def action_close(self) -> None:
        """Back to the console."""
        self.dismiss(None)
