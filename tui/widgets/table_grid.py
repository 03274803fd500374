"""The grid a `ResourceTable` draws its rows in: a Line API widget over rows of rendered cells.

`TableGrid` is a `ScrollView` whose `render_line` draws one line of the table on demand (the header
on top, then the rows the scroll offset brings into view), as Toolong's `LogLines` does for a log.
It knows nothing of filters, sorts or groups: `ResourceTable` hands it the cells of each row as
`Text`, in display order, and tells it when a cell changes, so a change repaints that row alone.

It looks and moves like Textual's `DataTable` with a row cursor, which it replaces (that widget
offers no way to reorder rows or change a cell without private bookkeeping): a padded cell per
column, zebra stripes, a header line that does not scroll away, up/down/page keys and ctrl+home/end
move the cursor, left/right/home/end scroll sideways, a click moves the cursor and a second click
(or enter) selects the row.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.cache import LRUCache
from textual.geometry import Region, Size, Spacing
from textual.message import Message
from textual.reactive import reactive
from textual.renderables.styled import Styled
from textual.scroll_view import ScrollView
from textual.strip import Strip

PADDING = 1
"""Blank cells on each side of a cell's text."""
HEADER = -1
"""The row index of the header line (in a line's metadata, and for the hover highlight)."""


@dataclass(slots=True)
class GridColumn:
    """One column of the grid: its `key`, header `label`, and width.

    `width` fixes the text's width in cells; None fits the widest text the column has held (it
    grows and never shrinks back, so a status going from "Up 59 seconds" to "Up 1 minute" leaves
    every row where it was).
    """

    key: str
    label: Text
    width: int | None
    content_width: int = 0

    @property
    def render_width(self) -> int:
        """The cells the column takes on screen, its padding included."""
        return 2 * PADDING + (self.content_width if self.width is None else self.width)


@dataclass(frozen=True, slots=True)
class _Look:
    """The styles a frame is drawn with, read from CSS once per frame: a change (theme, focus)
    makes every row's cached line stale, as it is part of the cache key."""

    base: Style
    header: Style
    even: Style
    odd: Style
    cursor: Style
    hover: Style
    header_hover: Style


def _text_width(text: Text) -> int:
    """The cells the widest line of `text` takes."""
    return max((cell_len(line) for line in text.plain.split("\n")), default=0)


class TableGrid(ScrollView, can_focus=True):
    """Rows of cells under a header, drawn line by line; a row cursor (see the module docstring).

    Keys are the ones a scrolling container binds (Textual's `ScrollableContainer`), made to move
    the cursor, plus enter and ctrl+home/ctrl+end (key methods); the grid declares no bindings of
    its own, so the console's keymap and help have nothing to list for it.
    """

    DEFAULT_CSS = """
    TableGrid {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;

        &:focus {
            background-tint: $foreground 5%;
            & > .table-grid--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .table-grid--header { background-tint: $foreground 5%; }
        }
        &:dark > .table-grid--even-row { background: $surface-darken-1 40%; }
        & > .table-grid--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .table-grid--header { background: ansi_bright_blue; color: ansi_default; }
        & > .table-grid--even-row { background: $surface-lighten-1 50%; }
        & > .table-grid--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .table-grid--header-hover { background: $accent 30%; }
        & > .table-grid--hover { background: $block-hover-background; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "table-grid--header",
        "table-grid--even-row",
        "table-grid--odd-row",
        "table-grid--cursor",
        "table-grid--hover",
        "table-grid--header-hover",
    }

    cursor_row: reactive[int] = reactive(0, always_update=False, repaint=False)
    """The index of the row the cursor is on (0 when there are none)."""

    class CursorMoved(Message):
        """The cursor went to another row (by a key, a click or `move_cursor`)."""

    class Selected(Message):
        """Enter, or a click on the cursor row: `row_key` is that row's."""

        def __init__(self, row_key: str) -> None:
            super().__init__()
            self.row_key = row_key

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._columns: list[GridColumn] = []
        self._cells: dict[str, list[Text]] = {}
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        # Bumped when a row's cells change: part of its cached line's key.
        self._versions: dict[str, int] = {}
        self._layout = 0  # bumped when a column's label or width changes: every line is stale then
        self._lines: LRUCache[str, tuple[tuple[object, ...], Strip]] = LRUCache(1024)
        # Each cell drawn without its line's metadata, by (row key, column): a cell that did not
        # change is not drawn again when its row is (a stats sample, a cursor move, a sort).
        self._drawn: LRUCache[tuple[str, int], tuple[tuple[object, ...], list[Segment]]] = LRUCache(8192)
        self._look: _Look | None = None
        self._hover: int | None = None  # the line the mouse is over (HEADER for the header), if any

    # Reading (tests, snapshots, panes) ------------------------------------------------------------

    @property
    def header_height(self) -> int:
        """The lines the header takes at the top (they never scroll away)."""
        return 1

    @property
    def rows_on_screen(self) -> int:
        """How many rows fit under the header."""
        return max(0, self.scrollable_content_region.height - self.header_height)

    @property
    def row_keys(self) -> list[str]:
        """The rows' keys, in the order they are drawn."""
        return list(self._order)

    @property
    def column_keys(self) -> list[str]:
        """The columns' keys, left to right."""
        return [column.key for column in self._columns]

    def label(self, column_key: str) -> Text:
        """The header label of column `column_key`."""
        return self._column(column_key).label

    def cell(self, row_key: str, column_key: str) -> Text:
        """What row `row_key` shows in column `column_key` (KeyError if there is no such cell)."""
        return self._cells[row_key][self._column_index(column_key)]

    def render_widths(self) -> dict[str, int]:
        """Each column's width on screen, padding included, by key."""
        return {column.key: column.render_width for column in self._columns}

    def _column(self, key: str) -> GridColumn:
        return self._columns[self._column_index(key)]

    def _column_index(self, key: str) -> int:
        for index, column in enumerate(self._columns):
            if column.key == key:
                return index
        raise KeyError(key)

    # Changing -------------------------------------------------------------------------------------

    def add_column(self, key: str, label: Text, width: int | None = None) -> None:
        """Add a column on the right; `width` fixes its text's width (None: fit the content)."""
        self._columns.append(GridColumn(key, label, width, _text_width(label)))
        self._changed_layout()

    def set_label(self, column_key: str, label: Text) -> None:
        """Change a column's header label (a sort arrow). Its width stays as it is."""
        self._column(column_key).label = label
        self._layout += 1
        self.refresh(Region(0, 0, self.size.width, self.header_height))

    def add_row(self, key: str, cells: Sequence[Text]) -> None:
        """Add a row (one `Text` per column) at the end of the order."""
        self._cells[key] = list(cells)
        self._versions[key] = self._versions.get(key, 0) + 1
        self._index[key] = len(self._order)
        self._order.append(key)
        if self._grow(zip(self._columns, cells, strict=True)):
            self._changed_layout()
        else:
            self._resize()
            self.refresh()

    def update_cell(self, row_key: str, column_key: str, value: Text) -> None:
        """Change one cell; only its row is drawn again, unless the column must grow for it."""
        index = self._column_index(column_key)
        self._cells[row_key][index] = value
        self._versions[row_key] += 1
        if self._grow([(self._columns[index], value)]):
            self._changed_layout()
        else:
            self._refresh_row(self._index[row_key])

    def remove_rows(self, keys: Collection[str], remaining: Sequence[str]) -> None:
        """Remove the rows `keys`; `remaining` is the order of the rows left."""
        for key in keys:
            self._cells.pop(key, None)
            self._versions.pop(key, None)
            self._lines.discard(key)
            for index in range(len(self._columns)):
                self._drawn.discard((key, index))
        self.set_order(remaining)

    def set_order(self, keys: Sequence[str]) -> None:
        """Draw the rows in the order of `keys` (every row's key, once)."""
        self._order = list(keys)
        self._index = {key: index for index, key in enumerate(self._order)}
        self._resize()
        self.cursor_row = self._clamp(self.cursor_row)
        self.refresh()

    def move_cursor(self, row: int, *, scroll: bool = True) -> None:
        """Put the cursor on row `row` (clamped to the rows there are)."""
        self.cursor_row = row
        if scroll:
            self.scroll_to_cursor()

    def _grow(self, cells: Iterable[tuple[GridColumn, Text]]) -> bool:
        """Widen the fitted columns whose new text is wider; whether any grew."""
        grew = False
        for column, text in cells:
            width = _text_width(text)
            if column.width is None and width > column.content_width:
                column.content_width = width
                grew = True
        return grew

    def _changed_layout(self) -> None:
        self._layout += 1
        self._resize()
        self.refresh()

    def _resize(self) -> None:
        width = sum(column.render_width for column in self._columns)
        self.virtual_size = Size(width, self.header_height + len(self._order))

    # The cursor -----------------------------------------------------------------------------------

    def _clamp(self, row: int) -> int:
        return max(0, min(row, len(self._order) - 1))

    def validate_cursor_row(self, row: int) -> int:
        """Keep the cursor on a row that exists."""
        return self._clamp(row)

    def watch_cursor_row(self, old: int, new: int) -> None:
        """Repaint the two rows the cursor left and reached, and say it moved."""
        self._refresh_row(old)
        self._refresh_row(new)
        self.scroll_to_cursor()
        self.post_message(self.CursorMoved())

    def scroll_to_cursor(self, animate: bool = False) -> None:
        """Scroll the cursor row into view below the header (only up or down)."""
        if not self.size.height:
            # Not laid out yet (rows given before the first frame): once it is, if it then shows.
            self.call_after_refresh(self._scroll_to_cursor, animate)
        else:
            self._scroll_to_cursor(animate)

    def _scroll_to_cursor(self, animate: bool) -> None:
        if not self._order or not self.size.height:
            return
        width = self.scrollable_content_region.width
        region = Region(int(self.scroll_x), self.header_height + self.cursor_row, width, 1)
        self.scroll_to_region(
            region, animate=animate, spacing=Spacing(self.header_height, 0, 0, 0), force=True
        )

    def _page(self) -> int:
        """How many rows one page is: the rows on screen."""
        return max(1, self.rows_on_screen)

    def action_scroll_up(self) -> None:
        """Up: the cursor one row up."""
        self._keyboard()
        self.cursor_row -= 1

    def action_scroll_down(self) -> None:
        """Down: the cursor one row down."""
        self._keyboard()
        self.cursor_row += 1

    def action_page_up(self) -> None:
        """Page up: the view and the cursor a page up."""
        self._keyboard()
        page = self._page()
        self.scroll_relative(y=-page, animate=False)
        self.move_cursor(self.cursor_row - page, scroll=False)

    def action_page_down(self) -> None:
        """Page down: the view and the cursor a page down."""
        self._keyboard()
        page = self._page()
        self.scroll_relative(y=page, animate=False, force=True)
        self.move_cursor(self.cursor_row + page, scroll=False)

    def action_scroll_home(self) -> None:
        """Home: all the way left (the cursor stays; ctrl+home goes to the first row)."""
        self._keyboard()
        self.scroll_x = 0

    def action_scroll_end(self) -> None:
        """End: all the way right (the cursor stays; ctrl+end goes to the last row)."""
        self._keyboard()
        self.scroll_x = self.max_scroll_x

    def key_ctrl_home(self, event: events.Key) -> None:
        """ctrl+home: the cursor to the first row."""
        event.stop()
        self._keyboard()
        self.cursor_row = 0

    def key_ctrl_end(self, event: events.Key) -> None:
        """ctrl+end: the cursor to the last row."""
        event.stop()
        self._keyboard()
        self.cursor_row = len(self._order) - 1

    def key_enter(self, event: events.Key) -> None:
        """Enter: select the cursor row."""
        event.stop()
        self._keyboard()
        self._select()

    def _select(self) -> None:
        if self._order:
            self.post_message(self.Selected(self._order[self.cursor_row]))

    # The mouse ------------------------------------------------------------------------------------

    def _keyboard(self) -> None:
        """A key was pressed: the mouse's highlight goes until the mouse moves again."""
        self._set_hover(None)

    def _set_hover(self, row: int | None) -> None:
        if row != self._hover:
            old, self._hover = self._hover, row
            for line in (old, row):
                if line is not None:
                    self._refresh_row(line)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        """Highlight the line under the mouse."""
        row = event.style.meta.get("row")
        self._set_hover(row if isinstance(row, int) else None)

    def on_leave(self, _: events.Leave) -> None:
        """The mouse left: no line is highlighted."""
        self._set_hover(None)

    def on_click(self, event: events.Click) -> None:
        """A click on a row puts the cursor there; on the cursor row, it selects the row."""
        row = event.style.meta.get("row")
        if not isinstance(row, int) or row == HEADER or not 0 <= row < len(self._order):
            return
        event.stop()
        again = row == self.cursor_row
        self.cursor_row = row
        if again:
            self._select()
        self.scroll_to_cursor(animate=True)

    # Drawing --------------------------------------------------------------------------------------

    def _refresh_row(self, row: int) -> None:
        """Repaint the line row `row` (HEADER: the header) is drawn on, if it is on screen."""
        y = 0 if row == HEADER else self.header_height + row - int(self.scroll_y)
        if (row == HEADER or y >= self.header_height) and y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def render_lines(self, crop: Region) -> list[Strip]:
        """Read the frame's styles once, then draw the lines asked for."""
        self._look = self._read_look()
        return super().render_lines(crop)

    def _read_look(self) -> _Look:
        def style(name: str) -> Style:
            return self.get_component_styles(name).rich_style

        return _Look(
            self.rich_style,
            style("table-grid--header"),
            style("table-grid--even-row"),
            style("table-grid--odd-row"),
            style("table-grid--cursor"),
            style("table-grid--hover"),
            style("table-grid--header-hover"),
        )

    def render_line(self, y: int) -> Strip:
        """Line `y` of the widget: the header, or the row the scroll offset puts there."""
        look = self._look or self._read_look()
        width = self.size.width
        if y < self.header_height:
            row, key = HEADER, None
        else:
            row = y - self.header_height + int(self.scroll_y)
            if row >= len(self._order):
                return Strip.blank(width, look.base)
            key = self._order[row]
        line = self._full_line(row, key, look, width)
        x = int(self.scroll_x)
        return line.crop(x, x + width).adjust_cell_length(width, look.base).simplify()

    def _full_line(self, row: int, key: str | None, look: _Look, width: int) -> Strip:
        """The whole line (every column, unscrolled) of row `row`, from the cache if it is current."""
        cursor = row == self.cursor_row and key is not None
        hover = row == self._hover
        version = 0 if key is None else self._versions[key]
        signature = (row % 2, version, cursor, hover, look, self._layout, width)
        cache_key = "" if key is None else key  # no row's key is "": ResourceTable's keys are ids
        cached = self._lines.get(cache_key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        strip = self._draw(row, key, look, width, cursor, hover)
        self._lines[cache_key] = (signature, strip)
        return strip

    def _draw(self, row: int, key: str | None, look: _Look, width: int, cursor: bool, hover: bool) -> Strip:
        """Draw a line of cells, styled as `DataTable` styles a row cursor's table."""
        if key is None:
            row_style, texts = look.header, [column.label for column in self._columns]
        else:
            row_style, texts = (look.odd if row % 2 else look.even), self._cells[key]
        highlight = Style()
        if hover:
            highlight += look.hover
            if key is None:
                highlight += look.header_hover
        if cursor:
            highlight += look.cursor
        # The cursor's colours win over a cell's own (a red status on the cursor row reads as the
        # cursor does), as DataTable's `cursor_foreground_priority="css"` has it.
        post = Style.from_color(highlight.color, highlight.bgcolor)
        pre = row_style + highlight
        segments: list[Segment] = []
        for index, (column, text) in enumerate(zip(self._columns, texts, strict=True)):
            # The line's metadata (which row and column a click lands on) goes on last: it is the
            # one thing that differs between the same cell on different lines, and no style of a
            # cell carries any.
            meta = Style.from_meta({"row": row, "column": index})
            drawn = self._cell("" if key is None else key, index, text, column.render_width, pre, post)
            segments.extend(Segment(segment.text, (segment.style or Style()) + meta) for segment in drawn)
        spare = max(0, width - sum(column.render_width for column in self._columns))
        extend = row_style + highlight + Style.from_meta({"row": row, "column": 0, "out_of_bounds": True})
        segments.append(Segment(" " * spare, extend))
        return Strip(segments)

    def _cell(self, key: str, index: int, text: Text, width: int, pre: Style, post: Style) -> list[Segment]:
        """Cell `index` of row `key`, padded to `width` under the line's styles (from the cache if
        it is the same text drawn the same way)."""
        signature = (text, width, pre, post)
        cached = self._drawn.get((key, index))
        if cached is not None and cached[0][0] is text and cached[0][1:] == signature[1:]:
            return cached[1]
        cell = Styled(Padding(text, (0, PADDING)), pre_style=pre, post_style=post)
        options = self.app.console_options.update(height=1, no_wrap=True).update_width(width)
        segments = self.app.console.render_lines(cell, options)[0]
        self._drawn[(key, index)] = (signature, segments)
        return segments
