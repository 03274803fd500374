"""A pane that is one resource table (with whatever it shows around it)."""

from __future__ import annotations

from typing import ClassVar, Self

from textual.widget import Widget

from tui.widgets.resource_table import ResourceTable


class TablePane(Widget):
    """A pane around one `ResourceTable` (its id in `TABLE_ID`): focus goes to the table."""

    TABLE_ID: ClassVar[str]

    @property
    def table(self) -> ResourceTable:
        """The pane's table."""
        return self.query_one(f"#{self.TABLE_ID}", ResourceTable)

    def focus(self, scroll_visible: bool = True) -> Self:
        """Focus goes to the table."""
        self.table.focus(scroll_visible)
        return self
