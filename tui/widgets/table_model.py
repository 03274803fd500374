"""What a resource table shows, worked out without Textual: filter, sort order, groups, marks, cell diffs.

`ResourceTable` (resource_table.py) keeps its grid (table_grid.py) in step with a `TableModel`. The
rules live here so they can be tested as plain Python and so the widget is only about drawing and keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from rich.text import Text

CellValue: TypeAlias = str | int | float | Text | None
"""What a cell holds: plain values, or a `rich.text.Text` for a styled cell. None shows as blank."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a resource table, declared once by the pane.

    `key` names the cell in each `Row`; `label` is the header; `width` fixes the content width in
    characters (None fits the content); `sort` turns a cell value into a sort key (None: text compares
    case-insensitively, numbers numerically); `justify` aligns the cells and the label; `sort_by`
    names a cell that is no column to sort by instead, when the shown text does not order right (a
    start time under an age that reads "5s"); the filter leaves that cell out.
    """

    key: str
    label: str
    width: int | None = None
    sort: Callable[[Any], Any] | None = None
    justify: Literal["left", "right"] = "left"
    sort_by: str | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One resource as the table shows it.

    `cells` maps column keys to values; keys that are no column are not shown but the filter searches
    them (a full id, a label). `group` puts the row under a group header when grouping is on (a compose
    project, say); `rank` orders rows before any sort column does (lower first: "running first").
    """

    cells: Mapping[str, CellValue]
    group: str | None = None
    rank: int = 0


@dataclass(frozen=True, slots=True)
class Header:
    """A group header in the display order: the group's name ("" for rows without one) and its row count."""

    group: str
    count: int


Entry: TypeAlias = str | Header
"""One line of the display order: a row id, or a group header."""


@dataclass(frozen=True, slots=True)
class UpdateStats:
    """What one reconciliation did to the table on screen, so callers and tests can see it stayed small.

    `added`/`removed` count data rows put on or taken off the screen (filtered rows count too);
    `changed` holds `(row_id, column_key)` of every data cell rewritten (the mark column's key is
    `MARK_COLUMN`); `headers` counts group header lines added, removed or relabelled; `reordered` says
    whether rows moved.
    """

    added: int = 0
    removed: int = 0
    changed: frozenset[tuple[str, str]] = frozenset()
    headers: int = 0
    reordered: bool = False

    @property
    def cells_changed(self) -> int:
        """How many data cells were rewritten."""
        return len(self.changed)


MARK_COLUMN = "\x00mark"
"""Column key of the mark (✓) column in `UpdateStats.changed`; NUL keeps it apart from any pane's keys."""


def cell_text(value: CellValue) -> str:
    """The text a cell shows, without styles."""
    if value is None:
        return ""
    if isinstance(value, Text):
        return value.plain
    return str(value)


def same_value(a: object, b: object) -> bool:
    """Whether two cell values would look the same, so the cell can be left alone.

    `Text.__eq__` ignores the base style, so a status that only changed colour would count as unchanged.
    """
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, Text):
        assert isinstance(b, Text)
        return a.plain == b.plain and a.style == b.style and a.spans == b.spans and a.justify == b.justify
    return bool(a == b)


class FilterError(ValueError):
    """A filter that can't be used: the message says why, in a sentence fit for the user."""


@dataclass(frozen=True, slots=True)
class RowFilter:
    """A parsed `/` filter.

    Plain text matches rows with a cell containing it, ignoring case. `~` starts a regular expression
    (case-insensitive, searched in each cell: `~^web-\\d+`). A leading `!` inverts either (`!exited`,
    `!~^web`). Surrounding spaces are ignored; an empty text or pattern filters nothing out.
    """

    text: str = ""
    inverse: bool = False
    needle: str = ""
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: str) -> RowFilter:
        """Read a filter as typed; raise `FilterError` for an invalid regular expression."""
        text = text.strip()
        body = text
        inverse = body.startswith("!")
        if inverse:
            body = body[1:]
        if body.startswith("~"):
            source = body[1:]
            if not source:
                return cls(text, inverse)
            try:
                pattern = re.compile(source, re.IGNORECASE)
            except re.error as exc:
                raise FilterError(f"{source!r} is not a valid regular expression: {exc}.") from None
            return cls(text, inverse, pattern=pattern)
        return cls(text, inverse, needle=body.casefold())

    @property
    def active(self) -> bool:
        """Whether this filter hides anything at all."""
        return bool(self.needle) or self.pattern is not None

    def matches(self, texts: Sequence[str], folded: Sequence[str]) -> bool:
        """Whether a row with these cell texts (as shown, and casefolded) passes the filter."""
        if self.pattern is not None:
            search = self.pattern.search
            hit = any(search(text) for text in texts)
        elif self.needle:
            needle = self.needle
            hit = any(needle in text for text in folded)
        else:
            return True
        return hit != self.inverse


@dataclass(frozen=True, slots=True)
class SortSpec:
    """The sort column (by key) and its direction."""

    column: str
    reverse: bool = False


def _sort_key(column: Column, value: CellValue) -> Any:
    if value is None:
        return None
    if column.sort is not None:
        try:
            return column.sort(value)
        except Exception:
            # A value the pane's key can't read ("—" where a number goes) sorts last, like a blank,
            # instead of taking the table down.
            return None
    if isinstance(value, Text):
        return value.plain.casefold()
    if isinstance(value, str):
        return value.casefold()
    return value


def _typed(key: Any) -> tuple[int, Any]:
    # Numbers before text before anything else, so a column mixing them still sorts.
    if isinstance(key, int | float):
        return (0, key)
    if isinstance(key, str):
        return (1, key)
    return (2, key)


def _sort_by_column(ids: list[str], rows: Mapping[str, Row], column: Column, reverse: bool) -> list[str]:
    """Stable sort of `ids` by `column`; blank cells (and keys that are None) go last either way."""
    keyed: list[tuple[Any, str]] = []
    blank: list[str] = []
    for row_id in ids:
        key = _sort_key(column, rows[row_id].cells.get(column.sort_by or column.key))
        if key is None:
            blank.append(row_id)
        else:
            keyed.append((_typed(key), row_id))
    try:
        ordered = sorted(keyed, key=lambda pair: pair[0], reverse=reverse)
    except TypeError:
        # Keys of kinds that don't compare (a sort function returning mixed tuples): fall back to text.
        ordered = sorted(keyed, key=lambda pair: str(pair[0][1]), reverse=reverse)
    return [row_id for _, row_id in ordered] + blank


def sort_ids(
    rows: Mapping[str, Row], ids: Iterable[str], columns: Sequence[Column], spec: SortSpec
) -> list[str]:
    """`ids` in display order: by rank, then the sort column, then the first column, then the id."""
    by_key = {column.key: column for column in columns}
    ordered = sorted(ids)
    first = columns[0]
    if spec.column != first.key:
        ordered = _sort_by_column(ordered, rows, first, reverse=False)
    ordered = _sort_by_column(ordered, rows, by_key[spec.column], spec.reverse)
    ordered.sort(key=lambda row_id: rows[row_id].rank)
    return ordered


def group_entries(rows: Mapping[str, Row], ordered: Sequence[str]) -> list[Entry]:
    """Sorted ids laid out under group headers: groups by name, rows without a group last."""
    groups: dict[str, list[str]] = {}
    for row_id in ordered:
        groups.setdefault(rows[row_id].group or "", []).append(row_id)
    names = sorted((name for name in groups if name), key=lambda name: (name.casefold(), name))
    if "" in groups:
        names.append("")
    entries: list[Entry] = []
    for name in names:
        entries.append(Header(name, len(groups[name])))
        entries.extend(groups[name])
    return entries


def follow_cursor(
    before: Sequence[str], cursor: str | None, after: Sequence[str], want: str | None = None
) -> int | None:
    """Where the cursor goes after the display order changed from `before` to `after`.

    To `want` (the row the user last chose) if it is on show again; else it stays on its key; if that
    key is gone, to the nearest survivor in the old order (the next one down, else the next one up);
    with no survivor, to the top. None: nothing to show.
    """
    if not after:
        return None
    index = {key: position for position, key in enumerate(after)}
    if want is not None and want in index:
        return index[want]
    if cursor is None:
        return 0
    if cursor in index:
        return index[cursor]
    try:
        old = before.index(cursor)
    except ValueError:
        return 0
    for key in before[old + 1 :]:
        if key in index:
            return index[key]
    for key in reversed(before[:old]):
        if key in index:
            return index[key]
    return 0


@dataclass(frozen=True, slots=True)
class Plan:
    """The operations that turn what is shown into what is wanted, by row key.

    `update` holds `(key, cell index, new value)`; `order` is the full display order afterwards.
    """

    remove: tuple[str, ...]
    add: tuple[tuple[str, tuple[object, ...]], ...]
    update: tuple[tuple[str, int, object], ...]
    order: tuple[str, ...]


def plan(shown: Mapping[str, Sequence[object]], wanted: Sequence[tuple[str, Sequence[object]]]) -> Plan:
    """Diff shown rows against wanted ones, cell by cell, so only what changed is touched."""
    wanted_keys = {key for key, _ in wanted}
    remove = tuple(key for key in shown if key not in wanted_keys)
    add: list[tuple[str, tuple[object, ...]]] = []
    update: list[tuple[str, int, object]] = []
    for key, cells in wanted:
        old = shown.get(key)
        if old is None:
            add.append((key, tuple(cells)))
            continue
        for index, (before, after) in enumerate(zip(old, cells, strict=True)):
            if not same_value(before, after):
                update.append((key, index, after))
    return Plan(remove, tuple(add), tuple(update), tuple(key for key, _ in wanted))


@dataclass
class _Texts:
    row: Row
    texts: list[str]
    folded: list[str]


@dataclass
class TableModel:
    """The state of one resource table: its rows, sort, filter, grouping and marks.

    `entries()` gives the display order; everything else is bookkeeping the widget asks about.
    """

    columns: tuple[Column, ...]
    sort: SortSpec
    grouped: bool = False
    rows: dict[str, Row] = field(default_factory=dict)
    row_filter: RowFilter = field(default_factory=RowFilter)
    marks: set[str] = field(default_factory=set)
    _texts: dict[str, _Texts] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def create(
        cls, columns: Sequence[Column], sort_column: str | None = None, reverse: bool = False
    ) -> TableModel:
        """A model over `columns`, sorted by `sort_column` (default: the first column)."""
        if not columns:
            raise ValueError("A resource table needs at least one column.")
        keys = [column.key for column in columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"Column keys must be unique, got {keys}.")
        if sort_column is not None and sort_column not in keys:
            raise ValueError(f"No column {sort_column!r} to sort by; columns: {keys}.")
        return cls(tuple(columns), SortSpec(sort_column or keys[0], reverse))

    # Rows ---------------------------------------------------------------------------------------

    def set_rows(self, rows: Mapping[str, Row]) -> None:
        """Replace the rows; marks and cached texts of ids that are gone are dropped."""
        self.rows = dict(rows)
        self.marks &= self.rows.keys()
        for row_id in [row_id for row_id in self._texts if row_id not in self.rows]:
            del self._texts[row_id]

    def _row_texts(self, row_id: str) -> _Texts:
        row = self.rows[row_id]
        cached = self._texts.get(row_id)
        if cached is None or cached.row is not row:
            sort_only = {column.sort_by for column in self.columns}
            texts = [cell_text(value) for key, value in row.cells.items() if key not in sort_only]
            if row.group:
                texts.append(row.group)
            cached = _Texts(row, texts, [text.casefold() for text in texts])
            self._texts[row_id] = cached
        return cached

    # Filter and order ---------------------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        """Filter the rows by `text` (see `RowFilter`); an invalid one raises and changes nothing."""
        self.row_filter = RowFilter.parse(text)

    def matching_ids(self) -> list[str]:
        """Ids of the rows the filter lets through, in no particular order."""
        row_filter = self.row_filter
        if not row_filter.active:
            return list(self.rows)
        matching = []
        for row_id in self.rows:
            texts = self._row_texts(row_id)
            if row_filter.matches(texts.texts, texts.folded):
                matching.append(row_id)
        return matching

    def entries(self) -> list[Entry]:
        """The display order: row ids, under group headers when grouped."""
        ordered = sort_ids(self.rows, self.matching_ids(), self.columns, self.sort)
        return group_entries(self.rows, ordered) if self.grouped else list(ordered)

    def cycle_sort(self) -> None:
        """Sort by the next column (after the last, the first again), ascending."""
        keys = [column.key for column in self.columns]
        self.sort = SortSpec(keys[(keys.index(self.sort.column) + 1) % len(keys)])

    def reverse_sort(self) -> None:
        """Flip the direction of the current sort."""
        self.sort = SortSpec(self.sort.column, not self.sort.reverse)

    def sort_by(self, column: str, reverse: bool = False) -> None:
        """Sort by the column with key `column`."""
        if column not in {c.key for c in self.columns}:
            raise ValueError(f"No column {column!r} to sort by.")
        self.sort = SortSpec(column, reverse)

    # Marks and selection ------------------------------------------------------------------------

    def toggle_marks(self, ids: Sequence[str]) -> None:
        """Mark `ids`; if all of them are marked already, unmark them instead."""
        wanted = [row_id for row_id in ids if row_id in self.rows]
        if all(row_id in self.marks for row_id in wanted):
            self.marks.difference_update(wanted)
        else:
            self.marks.update(wanted)

    def selected(self, entries: Sequence[Entry], cursor: Entry | None) -> list[str]:
        """What an action applies to, in display order.

        The marked rows on show, if any; else, on a group header, the rows of that group on show;
        else the row under the cursor; else nothing. Marked rows the filter hides are left out, so an
        action never reaches a row the user can't see.
        """
        marked = [entry for entry in entries if isinstance(entry, str) and entry in self.marks]
        if marked:
            return marked
        if isinstance(cursor, Header):
            return self.group_ids(entries, cursor.group)
        return [cursor] if isinstance(cursor, str) else []

    def group_ids(self, entries: Sequence[Entry], group: str) -> list[str]:
        """Ids in `entries` of the rows in `group` ("" for rows without one), in display order."""
        return [
            entry for entry in entries if isinstance(entry, str) and (self.rows[entry].group or "") == group
        ]
