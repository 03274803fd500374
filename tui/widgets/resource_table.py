"""The table every pane shares: rows keyed by id, only changed cells redrawn, `/` filter, marks, sort, groups.

A pane declares its `Column`s once and hands `update_rows()` a mapping `row_id -> Row` whenever it has
fresh data. The table works out what changed (table_model.py) and touches only that, keeping the cursor
on the same row id through updates, re-sorts and filters. Keys (all remappable by binding id with
`App.set_keymap`):

| key | id | does |
| --- | --- | --- |
| `/` | `table.filter` | filter: text, `~regex`, `!` inverts; it applies as you type, enter keeps it |
| `esc` (in the prompt) | `table.filter_cancel` | cancel the edit: back to the filter from before `/` |
| `esc` | `table.clear_filter` | clear the filter (only while one is set; otherwise esc goes to the pane) |
| `space` | `table.mark` | mark/unmark the row and move down; on a group header, the whole group |
| `ctrl+a` | `table.mark_all` | mark every row on show |
| `ctrl+u` | `table.clear_marks` | unmark everything |
| `o` / `O` | `table.sort_next` / `table.sort_reverse` | sort by the next column / reverse the sort |
| `g` | `table.group` | group rows under a header per group |

Actions apply to `selected_ids()`: the marked rows on show, else a header's group, else the cursor row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.theme import Theme
from textual.widget import Widget
from textual.widgets import Input, Label, Static

from tui.verbs import bindings
from tui.widgets.table_grid import TableGrid
from tui.widgets.table_model import (
    MARK_COLUMN,
    CellValue,
    Column,
    Entry,
    FilterError,
    Header,
    Row,
    TableModel,
    UpdateStats,
    follow_cursor,
    plan,
)

__all__ = ["MARK_COLUMN", "CellValue", "Column", "FilterError", "ResourceTable", "Row", "UpdateStats"]

_HEADER_PREFIX = "\x00group\x00"
_ARROWS = {False: " ▲", True: " ▼"}


def _entry_key(entry: Entry) -> str:
    # Header keys start with NUL, which no container, instance or task id contains.
    return _HEADER_PREFIX + entry.group if isinstance(entry, Header) else entry


class _FilterInput(Input):
    """The `/` prompt; `escape` cancels the edit (the filter goes back to what it was)."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("table.filter")

    class Cancelled(Message):
        """The user left the prompt with escape."""

    def action_cancel(self) -> None:
        """Tell the table to restore the filter and close the prompt."""
        self.post_message(self.Cancelled())


class ResourceTable(Widget):
    """A table of resources keyed by id, shared by every pane. See the module docstring for the keys.

    `columns` are shown in order after a narrow mark column. `sort_column` (default the first column)
    and `sort_reverse` set the initial sort; `grouped` starts grouped; `groupable=False` turns the `g`
    key off for panes without groups; `group_label` formats a group's header (`{group}` is its name)
    and `no_group_label` names the header of rows without a group; `empty_message` shows when there are
    no rows at all.
    """

    DEFAULT_CSS = """
    ResourceTable {
        height: 1fr;
        layout: vertical;

        & > .resource-table--mark { color: $accent; text-style: bold; }
        & > .resource-table--group { color: $primary; text-style: bold; }

        & > TableGrid { height: 1fr; }
        &.-empty > TableGrid { height: auto; }

        & > .rt-empty {
            display: none;
            height: 1fr;
            padding: 1 2;
            color: $text-muted;
        }
        &.-empty > .rt-empty { display: block; }

        & > .rt-status {
            display: none;
            height: 1;
            padding: 0 1;
            background: $panel;
            color: $text-muted;
        }
        &.-status > .rt-status { display: block; }

        & > .rt-filter {
            display: none;
            height: auto;
            background: $boost;
        }
        &.-filtering > .rt-filter { display: block; }
        & .rt-filter-error { display: none; width: 100%; padding: 0 1; color: $text-error; }
        & .rt-filter-error.-shown { display: block; }
        & .rt-filter-line { height: 1; }
        & .rt-filter-prompt { width: auto; padding: 0 0 0 1; color: $accent; text-style: bold; }
        & .rt-filter-input { width: 1fr; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"resource-table--mark", "resource-table--group"}

    BINDINGS: ClassVar[list[BindingType]] = bindings("table")

    class Activated(Message):
        """Enter (or a second click) on a data row: the pane's default action for `row_id`."""

        def __init__(self, table: ResourceTable, row_id: str) -> None:
            super().__init__()
            self.table = table
            self.row_id = row_id

        @property
        def control(self) -> ResourceTable:
            """The table, so `@on(ResourceTable.Activated, "#id")` works."""
            return self.table

    class CursorMoved(Message):
        """The cursor is on another line: a data row (`row_id`), a group header (`group`), or none.

        Posted only when the line really changed, not when an update redraws the same row.
        """

        def __init__(self, table: ResourceTable, row_id: str | None, group: str | None) -> None:
            super().__init__()
            self.table = table
            self.row_id = row_id
            self.group = group

        @property
        def control(self) -> ResourceTable:
            """The table, so `@on(ResourceTable.CursorMoved, "#id")` works."""
            return self.table

    class MarksChanged(Message):
        """The set of marked rows changed (by a key, or because marked rows went away)."""

        def __init__(self, table: ResourceTable, marked: frozenset[str]) -> None:
            super().__init__()
            self.table = table
            self.marked = marked

        @property
        def control(self) -> ResourceTable:
            """The table, so `@on(ResourceTable.MarksChanged, "#id")` works."""
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        sort_column: str | None = None,
        sort_reverse: bool = False,
        grouped: bool = False,
        groupable: bool = True,
        group_label: str = "{group}",
        no_group_label: str = "(no group)",
        empty_message: str = "Nothing to show.",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._model = TableModel.create(columns, sort_column, sort_reverse)
        self._model.grouped = grouped and groupable
        self._groupable = groupable
        self._group_label = group_label
        self._no_group_label = no_group_label
        self._empty_message = empty_message
        self._grid = TableGrid()
        self._empty = Static(classes="rt-empty")
        self._status = Static(classes="rt-status")
        self._prompt = _FilterInput(
            placeholder="text · ~regex · !inverse   enter keeps, esc cancels",
            compact=True,
            classes="rt-filter-input",
        )
        self._error = Label(classes="rt-filter-error")
        self._lines_shown: dict[Static, str] = {}  # what the empty-state and status lines say
        # What each row on screen shows, as values (not rendered Text), for the cell-by-cell diff.
        self._shown: dict[str, tuple[object, ...]] = {}
        self._order: list[str] = []
        self._entries: list[Entry] = []
        self._last_cursor: str | None = None
        # The row the user last put the cursor on. A filter may hide it and the cursor then sits on a
        # neighbour; when the row shows again, the cursor goes back to it.
        self._want: str | None = None
        self._last_marks: frozenset[str] = frozenset()
        self._ready = False  # columns are added on mount; rows given before that wait for it
        self._filter_before = ""
        self._filter_error = ""
        self.last_update = UpdateStats()
        """What the last reconciliation (data update, filter, sort, marks...) did on screen."""

    # Composition --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """The grid, the empty-state line, the status line and the (hidden) filter prompt."""
        yield self._grid
        yield self._empty
        yield self._status
        with Vertical(classes="rt-filter"):
            yield self._error
            with Horizontal(classes="rt-filter-line"):
                yield Label("/", classes="rt-filter-prompt")
                yield self._prompt

    def on_mount(self) -> None:
        """Lay out the columns, show whatever rows came before mounting, follow theme changes."""
        grid = self._grid
        grid.add_column(MARK_COLUMN, Text(""), width=1)
        for column in self._model.columns:
            grid.add_column(column.key, self._label(column), width=column.width)
        self._ready = True
        self._reconcile()
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed)

    def focus(self, scroll_visible: bool = True) -> ResourceTable:
        """Focus the grid: the table itself never holds focus, its rows do."""
        self._grid.focus(scroll_visible)
        return self

    @property
    def grid(self) -> TableGrid:
        """The grid the rows are drawn in, for reading what is on screen (tests, snapshots)."""
        return self._grid

    def ids_on_screen(self) -> list[str]:
        """Ids of the data rows scrolled into view now, in display order (the cursor's may be one
        of them or not)."""
        grid = self._grid
        first = int(grid.scroll_y)
        lines = grid.rows_on_screen
        return [entry for entry in self._entries[first : first + lines] if isinstance(entry, str)]

    @property
    def columns(self) -> tuple[Column, ...]:
        """The declared columns."""
        return self._model.columns

    @property
    def rows(self) -> Mapping[str, Row]:
        """Every row last given to `update_rows`, shown or filtered out."""
        return self._model.rows

    # Data ---------------------------------------------------------------------------------------

    def update_rows(self, rows: Mapping[str, Row]) -> UpdateStats:
        """Show `rows` (all of them: ids not in it are removed), touching only the cells that changed.

        Call it on the UI's event loop: a worker hands its rows over with a message or `call_from_thread`.
        """
        self._model.set_rows(rows)
        return self._reconcile()

    def _reconcile(self) -> UpdateStats:
        """Bring the grid in line with the model, in one batch, keeping the cursor on its row."""
        if not self._ready:
            return self.last_update
        self._sync_cursor()  # a cursor move whose RowHighlighted is still queued counts as the user's
        entries = self._model.entries()
        wanted = [(_entry_key(entry), self._signature(entry)) for entry in entries]
        grid = self._grid
        before = self._order
        cursor = self._cursor_key()
        steps = plan(self._shown, wanted)
        removed = set(steps.remove)
        keys = [column.key for column in self._model.columns]
        all_keys = [MARK_COLUMN, *keys]
        with self.app.batch_update():
            remaining = [key for key in before if key not in removed]
            if removed:
                grid.remove_rows(removed, remaining)
            for key, values in steps.add:
                grid.add_row(key, self._render_row(key, values))
            changed: set[tuple[str, str]] = set()
            headers = sum(1 for key in (*steps.remove, *(k for k, _ in steps.add)) if self._is_header(key))
            for key, index, value in steps.update:
                column_key = all_keys[index]
                grid.update_cell(key, column_key, self._render_cell(key, index, value))
                if self._is_header(key):
                    headers += 1
                else:
                    changed.add((key, column_key))
            order = list(steps.order)
            reordered = remaining + [key for key, _ in steps.add] != order
            if reordered:
                grid.set_order(order)
            target = follow_cursor(before, cursor, order, self._want)
            if target is not None and target != grid.cursor_row:
                grid.move_cursor(target)
        self._shown = dict(wanted)
        self._order = order
        self._entries = entries
        self.last_update = UpdateStats(
            added=sum(1 for key, _ in steps.add if not self._is_header(key)),
            removed=sum(1 for key in steps.remove if not self._is_header(key)),
            changed=frozenset(changed),
            headers=headers,
            reordered=reordered and bool(before),
        )
        self._refresh_chrome()
        self._sync_cursor(placed=True)
        self._sync_marks()
        return self.last_update

    @staticmethod
    def _is_header(key: str) -> bool:
        return key.startswith(_HEADER_PREFIX)

    def _signature(self, entry: Entry) -> tuple[object, ...]:
        """The values a line shows: mark, then one per column (a header: its label in the first)."""
        columns = self._model.columns
        if isinstance(entry, Header):
            name = self._group_label.format(group=entry.group) if entry.group else self._no_group_label
            # ▾: the group is open (its rows are under it); groups never fold away here.
            return (False, f"▾ {name}  ({entry.count})", *([None] * (len(columns) - 1)))
        cells = self._model.rows[entry].cells
        return (entry in self._model.marks, *(cells.get(column.key) for column in columns))

    def _render_row(self, key: str, values: Sequence[object]) -> list[Text]:
        return [self._render_cell(key, index, value) for index, value in enumerate(values)]

    def _render_cell(self, key: str, index: int, value: object) -> Text:
        if index == 0:
            if not value:
                return Text("")
            return Text("✓", style=self.get_component_rich_style("resource-table--mark", partial=True))
        column = self._model.columns[index - 1]
        if self._is_header(key) and index == 1:
            style = self.get_component_rich_style("resource-table--group", partial=True)
            return Text(str(value or ""), style=style, no_wrap=True, overflow="ellipsis")
        if isinstance(value, Text):
            text = value.copy()
            text.no_wrap = True
            text.overflow = "ellipsis"
            if column.justify == "right":
                text.justify = "right"
            return text
        # A str becomes Text, never markup: a container named "[db]" must show as "[db]".
        justify: Literal["left", "right"] = column.justify
        return Text("" if value is None else str(value), justify=justify, no_wrap=True, overflow="ellipsis")

    def _label(self, column: Column) -> Text:
        sort = self._model.sort
        # Every label keeps room for the arrow, so moving the sort never changes a column's width.
        arrow = _ARROWS[sort.reverse] if column.key == sort.column else "  "
        return Text(column.label + arrow, justify=column.justify)

    def _on_theme_changed(self, theme: Theme) -> None:
        """Redraw the mark and header cells: their colours come from the theme."""
        for key, values in self._shown.items():
            if values[0]:
                self._grid.update_cell(key, MARK_COLUMN, self._render_cell(key, 0, values[0]))
            if self._is_header(key):
                self._grid.update_cell(key, self._model.columns[0].key, self._render_cell(key, 1, values[1]))

    # Cursor and selection -----------------------------------------------------------------------

    def _cursor_key(self) -> str | None:
        row = self._grid.cursor_row
        return self._order[row] if 0 <= row < len(self._order) else None

    def _cursor_entry(self) -> Entry | None:
        row = self._grid.cursor_row
        return self._entries[row] if 0 <= row < len(self._entries) else None

    def cursor_id(self) -> str | None:
        """The id of the data row under the cursor (None on a group header or an empty table)."""
        entry = self._cursor_entry()
        return entry if isinstance(entry, str) else None

    def cursor_group(self) -> str | None:
        """The group whose header the cursor is on ("" for rows without a group), else None."""
        entry = self._cursor_entry()
        return entry.group if isinstance(entry, Header) else None

    def move_cursor_to(self, row_id: str) -> bool:
        """Put the cursor on row `row_id`; False if that row is not on show."""
        try:
            index = self._order.index(row_id)
        except ValueError:
            return False
        self._grid.move_cursor(index)
        self._sync_cursor()
        self._want = row_id
        return True

    def visible_ids(self) -> list[str]:
        """Ids of the data rows on show, in display order."""
        return [entry for entry in self._entries if isinstance(entry, str)]

    def marked_ids(self) -> list[str]:
        """Ids of the marked rows on show, in display order."""
        marks = self._model.marks
        return [entry for entry in self._entries if isinstance(entry, str) and entry in marks]

    def selected_ids(self) -> list[str]:
        """The rows an action applies to, in display order.

        The marked rows on show, if any; else, with the cursor on a group header, that group's rows on
        show ("restart the whole project"); else the cursor row; else nothing. Marked rows hidden by the
        filter are never included.
        """
        return self._model.selected(self._entries, self._cursor_entry())

    def _sync_cursor(self, *, placed: bool = False) -> None:
        """Post `CursorMoved` if the cursor is on another line; `placed`: we moved it, not the user."""
        key = self._cursor_key()
        if key == self._last_cursor:
            return
        self._last_cursor = key
        if not placed or self._want is None:
            self._want = key
        entry = self._cursor_entry()
        if isinstance(entry, Header):
            self.post_message(self.CursorMoved(self, None, entry.group))
        else:
            self.post_message(self.CursorMoved(self, entry, None))

    def _sync_marks(self) -> None:
        marks = frozenset(self._model.marks)
        if marks != self._last_marks:
            self._last_marks = marks
            self.post_message(self.MarksChanged(self, marks))
            self.refresh_bindings()

    @on(TableGrid.CursorMoved)
    def _cursor_moved(self, event: TableGrid.CursorMoved) -> None:
        """Turn the grid's cursor moves into `CursorMoved`, once per real change."""
        event.stop()
        self._sync_cursor()

    @on(TableGrid.Selected)
    def _selected(self, event: TableGrid.Selected) -> None:
        """Enter on a data row posts `Activated`; on a group header it does nothing."""
        event.stop()
        if not self._is_header(event.row_key):
            self.post_message(self.Activated(self, event.row_key))

    # Sort, group, marks -------------------------------------------------------------------------

    @property
    def sort_column(self) -> str:
        """The key of the column rows are sorted by (after rank)."""
        return self._model.sort.column

    @property
    def sort_reverse(self) -> bool:
        """Whether the sort column sorts descending."""
        return self._model.sort.reverse

    def sort_by(self, column: str, reverse: bool = False) -> None:
        """Sort by column `column`."""
        previous = self._model.sort.column
        self._model.sort_by(column, reverse)
        self._resort(previous)

    def _resort(self, previous: str) -> None:
        current = self._model.sort.column
        for key in {previous, current}:
            self._grid.set_label(key, self._label(next(c for c in self._model.columns if c.key == key)))
        self._reconcile()

    @property
    def grouped(self) -> bool:
        """Whether rows show under a header per group."""
        return self._model.grouped

    @grouped.setter
    def grouped(self, value: bool) -> None:
        self._model.grouped = value and self._groupable
        self._reconcile()

    def clear_marks(self) -> None:
        """Unmark every row."""
        self._model.marks.clear()
        self._reconcile()

    def action_toggle_mark(self) -> None:
        """Mark or unmark the cursor row and move down; on a group header, that whole group."""
        entry = self._cursor_entry()
        if entry is None:
            return
        ids = [entry] if isinstance(entry, str) else self._model.group_ids(self._entries, entry.group)
        self._model.toggle_marks(ids)
        self._reconcile()
        self._grid.cursor_row += 1

    def action_mark_all(self) -> None:
        """Mark every row on show."""
        self._model.marks.update(self.visible_ids())
        self._reconcile()

    def action_clear_marks(self) -> None:
        """Unmark every row."""
        self.clear_marks()

    def action_copy(self) -> None:
        """Copy the ids of the marked rows, else the one under the cursor, to the clipboard
        (OSC 52: through SSH and tmux too, where the terminal allows it)."""
        ids = self.selected_ids()
        if not ids:
            return
        self.app.copy_to_clipboard("\n".join(ids))
        self.notify(f"Copied {ids[0] if len(ids) == 1 else f'{len(ids)} ids'}.", timeout=2)

    def action_sort_next(self) -> None:
        """Sort by the next column."""
        previous = self._model.sort.column
        self._model.cycle_sort()
        self._resort(previous)

    def action_sort_reverse(self) -> None:
        """Reverse the sort."""
        self._model.reverse_sort()
        self._resort(self._model.sort.column)

    def action_toggle_group(self) -> None:
        """Group rows under headers, or stop grouping."""
        self.grouped = not self.grouped

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Let esc, ctrl+u and g through to the pane when there is nothing for them to do here."""
        if action == "open_filter":
            return not self._prompt.has_focus  # "/" is typed into the prompt then, not a key here
        if action == "clear_filter":
            return self._model.row_filter.active
        if action == "clear_marks":
            return bool(self._model.marks)
        if action == "toggle_group":
            return self._groupable
        return True

    # Filter -------------------------------------------------------------------------------------

    @property
    def filter_text(self) -> str:
        """The filter in force, as typed ("" for none)."""
        return self._model.row_filter.text

    def set_filter(self, text: str) -> None:
        """Filter rows by `text` (see the module docstring); raises `FilterError` if it is invalid."""
        self._model.set_filter(text)
        self._reconcile()
        self.refresh_bindings()

    @property
    def empty_message(self) -> str:
        """What the table says when it has no rows at all."""
        return self._empty_message

    @empty_message.setter
    def empty_message(self, message: str) -> None:
        self._empty_message = message
        self._refresh_chrome()

    @property
    def status_text(self) -> str:
        """The status line: the filter with rows shown/total, and how many rows are marked."""
        parts = []
        model = self._model
        if model.row_filter.active:
            parts.append(f"filter: {model.row_filter.text}  {len(self.visible_ids())}/{len(model.rows)}")
        if model.marks:
            shown = len(self.marked_ids())
            hidden = len(model.marks) - shown
            if not hidden:
                parts.append(f"{shown} marked")
            elif not shown:
                parts.append(f"{hidden} marked, hidden by the filter")
            else:
                parts.append(f"{shown} marked (+{hidden} hidden by the filter)")
        return "  ·  ".join(parts)

    def _refresh_chrome(self) -> None:
        """The empty-state line and the status line, from the current state."""
        empty = not self._entries
        self.set_class(empty, "-empty")
        if empty:
            if self._model.rows and self._model.row_filter.active:
                message = f"Nothing matches filter {self._model.row_filter.text!r}.  (esc clears it)"
            else:
                message = self._empty_message
            self._set_line(self._empty, message)
        status = self.status_text
        self.set_class(bool(status), "-status")
        self._set_line(self._status, status)

    def _set_line(self, line: Static, text: str) -> None:
        # Updating a Static lays out and redraws the screen even with the same text, and every data
        # update (a stats sample every 2 s) comes through here: only a new text is worth a frame.
        if self._lines_shown.get(line) != text:
            self._lines_shown[line] = text
            line.update(Text(text))

    def action_open_filter(self) -> None:
        """Open the filter prompt with the current filter in it."""
        prompt = self._prompt
        self._filter_before = self.filter_text
        self._show_filter_error("")
        prompt.value = self.filter_text
        self.add_class("-filtering")
        # Focused now, not after the next refresh: keys typed right after "/" must reach the prompt,
        # not the table (where "g" or "o" would regroup or re-sort).
        self.screen.set_focus(prompt)

    def action_clear_filter(self) -> None:
        """Show every row again."""
        self.set_filter("")

    def _close_filter(self) -> None:
        self.remove_class("-filtering")
        self.screen.set_focus(self._grid)

    def _show_filter_error(self, message: str) -> None:
        self._filter_error = message
        self._error.update(Text(message))
        self._error.set_class(bool(message), "-shown")

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as the user types; an invalid pattern is reported and the last valid one stays."""
        if not isinstance(event.input, _FilterInput):
            return
        event.stop()
        try:
            self.set_filter(event.value)
        except FilterError as exc:
            kept = self.filter_text
            self._show_filter_error(f"{exc} Still showing {kept!r}." if kept else f"{exc}")
        else:
            self._show_filter_error("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter keeps the filter and goes back to the rows, unless the pattern is invalid."""
        if not isinstance(event.input, _FilterInput):
            return
        event.stop()
        if not self._filter_error:
            self._close_filter()

    @on(_FilterInput.Cancelled)
    def _cancel_filter(self, event: _FilterInput.Cancelled) -> None:
        """Escape in the prompt: put back the filter from before `/` and close the prompt."""
        event.stop()
        self._show_filter_error("")
        self.set_filter(self._filter_before)
        self._close_filter()
