"""The one log widget every streaming pane uses: container logs, instance consoles, task output, broker logs.

A `LogView` holds a bounded ring of lines (`LogBuffer`) and draws only the rows on screen through
the Line API (`LogLines.render_line`), so a flood costs a list append per line and memory stays
bounded however long it runs. It follows new lines until you scroll up, searches (`/`, `n`, `N`),
filters to matches with context (`f`), toggles timestamps, wrap and colours, adds markers, saves
what it holds, and asks its owner for another range of the source (`s`).

Data flows down: the owner calls `append()` or `attach()`es an async iterator of batches, which
is consumed in a worker and flushed into the buffer at most ~30 times a second. Messages flow up:
`LogView.RangeRequested` when the user picks another range.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from array import array
from bisect import bisect_right
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from itertools import accumulate
from pathlib import Path
from time import monotonic
from typing import ClassVar, Self

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.cache import LRUCache
from textual.containers import Horizontal
from textual.events import Resize
from textual.geometry import Region, Size
from textual.markup import escape
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, Label
from textual.worker import Worker

from backends.errors import BerthError
from backends.paths import open_private
from backends.streams import LogLine
from tui.error_log import log_unexpected
from tui.screens.picker import PickerScreen
from tui.verbs import bindings
from tui.widgets.log_buffer import (
    MARKER,
    SEPARATOR,
    STDERR,
    STDOUT,
    SYSTEM,
    FilteredView,
    LineBatch,
    LogBuffer,
    Matches,
    QueryError,
    ansi_ready,
    compile_query,
    plain_text,
    plain_texts,
    short_stamp,
)

FLUSH_INTERVAL = 1 / 30
"""The shortest time between two flushes of an attached source into the buffer (seconds)."""

FLOOD_FLUSH_INTERVAL = 1 / 20
"""The same while each flush brings a screenful of lines or more. Every frame then shows only new
lines, a blur at any rate, and costs as much however many came: fewer frames leave the event loop
more of its time for keys and for reading the source."""

RANGES: tuple[tuple[str, str | None, int | None], ...] = (
    ("tail 100", None, 100),
    ("tail 1000", None, 1000),
    ("since 5m", "5m", None),
    ("since 1h", "1h", None),
    ("since 24h", "24h", None),
    ("all", None, None),
)
"""The ranges `s` offers: (label, since, tail), passed on in `LogView.RangeRequested`."""

GUTTER_WIDTH = 2
_MIN_WRAP = GUTTER_WIDTH + 8  # the narrowest width lines are wrapped at
_CACHE_MIN = 16  # lines whose drawn rows are kept, at least; else a screen's worth
_GUTTER = ("  ", "▌ ", "· ", "━ ")  # by stream code: stdout, stderr, system, marker
_GUTTER_STYLE = ("", "log-view--stderr", "log-view--system", "log-view--marker")
_CURRENT_GUTTER = "▸ "
_HIGHLIGHTS = {"log-view--match", "log-view--current-match"}
_SEPARATOR_TEXT = "  ┈┈┈┈┈┈┈┈┈┈┈┈┈┈┈┈┈┈┈┈┈┈┈┈"


def _cells(text: str) -> int:
    # len() is exact for ASCII and much cheaper than measuring cell by cell.
    return len(text) if text.isascii() else cell_len(text)


def _now_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _save_error(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileExistsError):
        return f"{path} already exists; choose another name."
    if isinstance(exc, FileNotFoundError):
        return f"Could not save to {path}: the folder {path.parent} does not exist."
    if isinstance(exc, PermissionError):
        return f"Could not save to {path}: permission denied, choose a folder you can write to."
    reason = exc.strerror or str(exc)
    return f"Could not save to {path}: {reason[:1].lower()}{reason[1:]}."


class LogLines(ScrollView, can_focus=True):
    """The scrolling body of a `LogView`: draws only the visible rows, with the Line API.

    It maps screen rows to "entries" (every buffer line, or the rows of the filtered view) and,
    when wrapping, entries to several rows through a running total of their heights, so finding
    the line under a row is a bisect however many lines there are.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-view--match",
        "log-view--current-match",
        "log-view--stderr",
        "log-view--system",
        "log-view--marker",
        "log-view--timestamp",
        "log-view--separator",
    }

    DEFAULT_CSS = """
    LogLines {
        background: $surface;
        color: $foreground;
        overflow-y: scroll;
        overflow-x: auto;
        &:focus { background-tint: $foreground 5%; }
        & > .log-view--match { background: $warning 30%; }
        & > .log-view--current-match { background: $warning; color: auto 90%; text-style: bold; }
        & > .log-view--stderr { color: $text-error; text-style: bold; }
        & > .log-view--system { color: $text-secondary; text-style: italic; }
        & > .log-view--marker { color: $text-warning; text-style: bold; }
        & > .log-view--timestamp { color: $text-muted; }
        & > .log-view--separator { color: $text-muted; }
    }
    """

    def __init__(self, view: LogView) -> None:
        super().__init__()
        self._view = view
        # The rows of lines drawn lately, by seq (never reused), with the (scroll_x, width, fold) they
        # were cut for. One screen's worth (see on_resize): cached strips outlive a frame, so the
        # garbage collector moves them to its oldest generation, and each full collection of it
        # costs time on the event loop; a flood must not churn thousands through it. A row handed
        # to the compositor also keeps what Textual derives from it (filtered and divided copies,
        # each with its own caches), a score of objects a row.
        self._cache: LRUCache[int, tuple[tuple[int, int, int], tuple[Strip, ...]]] = LRUCache(_CACHE_MIN)
        self._styles: dict[str, Style] = {}
        self._combined: dict[tuple[str, Style], Style] = {}
        # What every row of a render pass needs (see _pass_values). Each is a property that costs
        # more than drawing a cached row, so it is worked out once per pass rather than per row.
        self._pass: tuple[int, int, int, int, Style] | None = None
        # Whether the last pass drew the rows itself, past Textual's per-row styling and its cache of
        # styled rows, which meanwhile went stale (see render_lines).
        self._drew_plain = False
        self._ends = array("q")  # wrapping: running total of rows at the end of each entry
        self._origin = 0  # wrapping: rows taken by entries already trimmed off the front
        self._wrapped_for = 0  # the width the wrapped heights were measured at
        self._max_cells = 0  # the widest line seen, for the horizontal extent
        self._stamp_cells = 0
        self._programmatic = False

    # -- entries -------------------------------------------------------------------------------

    @property
    def entry_count(self) -> int:
        """How many entries (lines, or filtered rows) there are to scroll through."""
        view = self._view
        return len(view.filtered.rows) if view.filtering else len(view.buffer)

    def entry_seq(self, entry: int) -> int:
        """The seq of the line shown by `entry` (SEPARATOR for a filter separator)."""
        view = self._view
        return view.filtered.rows[entry] if view.filtering else view.buffer.first + entry

    def entry_of(self, seq: int, *, at_or_after: bool = False) -> int | None:
        """The entry showing line `seq` (or, with `at_or_after`, the first one showing it or later)."""
        view = self._view
        if view.filtering:
            rows = view.filtered
            return rows.index_at_or_after(seq) if at_or_after else rows.index(seq)
        if at_or_after:
            seq = max(seq, view.buffer.first)
        return seq - view.buffer.first if view.buffer.first <= seq < view.buffer.end else None

    def entry_row(self, entry: int) -> int:
        """The first screen row (in virtual coordinates) of `entry`."""
        if not self._view.wrap:
            return entry
        return (self._ends[entry - 1] if entry else self._origin) - self._origin

    def _locate(self, row: int) -> tuple[int, int] | None:
        """The entry under virtual `row`, and which of its wrapped rows it is."""
        if row < 0:
            return None
        if not self._view.wrap:
            return (row, 0) if row < self.entry_count else None
        ends = self._ends
        entry = bisect_right(ends, row + self._origin)
        if entry >= len(ends):
            return None
        start = ends[entry - 1] if entry else self._origin
        return entry, row + self._origin - start

    def _seq_at_row(self, row: int, step: int) -> int | None:
        found = self._locate(row)
        if found is None:
            return None
        entry, count = found[0], self.entry_count
        while 0 <= entry < count:  # step off separators
            seq = self.entry_seq(entry)
            if seq != SEPARATOR:
                return seq
            entry += step
        return None

    def top_seq(self) -> int | None:
        """The seq of the first line on screen."""
        return self._seq_at_row(round(self.scroll_y), 1)

    def bottom_seq(self) -> int | None:
        """The seq of the last line on screen."""
        if not self.entry_count:
            return None
        last_row = self.virtual_size.height - 1
        row = min(last_row, round(self.scroll_y) + max(1, self.scrollable_content_region.height) - 1)
        return self._seq_at_row(row, -1)

    # -- layout --------------------------------------------------------------------------------

    def _wrap_width(self) -> int:
        return max(_MIN_WRAP, self.scrollable_content_region.width)

    def _heights(self, start: int) -> list[int]:
        """The wrapped heights of entries from `start` on, at the current width."""
        view = self._view
        buffer, width, stamps = view.buffer, self._wrap_width(), view.show_timestamps
        if view.filtering:
            # A separator measures as an empty line without a timestamp: one row.
            seqs = view.filtered.rows[start:]
            texts = plain_texts([buffer.text(seq) if seq != SEPARATOR else "" for seq in seqs])
            marks = [buffer.stamp(seq) if stamps and seq != SEPARATOR else None for seq in seqs]
        else:
            texts = plain_texts(buffer.texts(buffer.first + start, buffer.end))
            marks = buffer.stamps(buffer.first + start, buffer.end) if stamps else []
        measure = len if "".join(texts).isascii() else _cells  # one check instead of one a line
        if not any(marks):
            room = max(1, width - GUTTER_WIDTH)
            return [max(1, -(-measure(text) // room)) for text in texts]
        rooms = [
            max(1, width - GUTTER_WIDTH - (_cells(short_stamp(mark)) + 1 if mark else 0)) for mark in marks
        ]
        return [max(1, -(-measure(text) // room)) for text, room in zip(texts, rooms, strict=True)]

    def _extend_heights(self) -> None:
        ends = self._ends
        totals = accumulate(self._heights(len(ends)), initial=ends[-1] if ends else self._origin)
        next(totals)  # the initial value is the previous total, already in place
        ends.extend(totals)

    def _update_virtual_size(self) -> None:
        view = self._view
        if view.wrap:
            height = self._ends[-1] - self._origin if self._ends else 0
            self.virtual_size = Size(self.scrollable_content_region.width, height)
        else:
            prefix = GUTTER_WIDTH + (self._stamp_cells + 1 if view.show_timestamps else 0)
            # Lines narrower than the view scroll no further sideways however wide they are: the
            # extent is then the view's own width, so a toggle that changes their width (timestamps)
            # leaves the size alone and does not make Textual lay the screen out again.
            width = max(prefix + self._max_cells, self.scrollable_content_region.width)
            self.virtual_size = Size(width, self.entry_count)

    def relayout(self, anchor: int | None = None) -> None:
        """Lay out from scratch (after a toggle): line `anchor` at the top, or the end when following."""
        if not self.is_mounted:
            return
        self._cache.clear()
        self._ends, self._origin = array("q"), 0
        if self._view.wrap:
            self._wrapped_for = self._wrap_width()
            self._extend_heights()
        self._update_virtual_size()
        if self._view.follow:
            self.scroll_to_end()
        elif anchor is not None and (entry := self.entry_of(anchor, at_or_after=True)) is not None:
            self._scroll_rows(self.entry_row(entry))
        self.refresh()

    def reset_extent(self) -> None:
        """Forget the widest line seen (after the buffer is cleared)."""
        self._max_cells = self._stamp_cells = 0

    def on_mount(self) -> None:
        """Lay out whatever was appended before the view was on screen."""
        self.relayout()

    def lines_added(self, trimmed: int, added: int) -> None:
        """Take in `added` new lines after `trimmed` entries fell off the front."""
        view, buffer = self._view, self._view.buffer
        if added:
            texts = buffer.texts(buffer.end - added, buffer.end)
            joined = "".join(texts)
            if joined.isascii() and "\t" not in joined and "\x1b" not in joined:
                widest = max(map(len, texts), default=0)
            else:
                widest = max((_cells(plain_text(text)) for text in texts), default=0)
            self._max_cells = max(self._max_cells, widest)
            if stamp := buffer.stamp(buffer.end - 1):
                self._stamp_cells = max(self._stamp_cells, len(short_stamp(stamp)))
        if not self.is_mounted:
            return  # on_mount lays out everything at once
        removed_rows = 0
        if trimmed:
            if view.wrap:
                trimmed = min(trimmed, len(self._ends))
                if trimmed:
                    origin = self._ends[trimmed - 1]
                    removed_rows, self._origin = origin - self._origin, origin
                    del self._ends[:trimmed]
            else:
                removed_rows = trimmed
        if view.wrap:
            self._extend_heights()
        self._update_virtual_size()
        if view.follow:
            self.scroll_to_end()
        elif removed_rows and self.scroll_y > 0:
            # Paused: what was on screen moved up by the rows that fell off; keep it in place.
            self._scroll_rows(max(0, round(self.scroll_y) - removed_rows))
        self.refresh()

    # -- scrolling -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _scrolling(self) -> Iterator[None]:
        self._programmatic = True
        try:
            yield
        finally:
            self._programmatic = False

    def _scroll_rows(self, row: int) -> None:
        with self._scrolling():
            self.scroll_to(y=row, animate=False, immediate=True)

    def scroll_to_end(self) -> None:
        """Show the newest lines (without touching follow)."""
        with self._scrolling():
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    def scroll_to_seq(self, seq: int) -> None:
        """Bring line `seq` on screen, a third of the way down, unless it is already in full view."""
        entry = self.entry_of(seq)
        if entry is None:
            return
        top = self.entry_row(entry)
        bottom = self.entry_row(entry + 1) if self._view.wrap and entry + 1 <= len(self._ends) else top + 1
        height = self.scrollable_content_region.height
        if self.scroll_y <= top and bottom <= self.scroll_y + height:
            return
        self._scroll_rows(max(0, top - height // 3))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        """Scrolling up by hand pauses follow; scrolling back down to the end resumes it."""
        super().watch_scroll_y(old_value, new_value)
        if self._programmatic:
            return
        at_end = new_value >= self.max_scroll_y
        if new_value < old_value and not at_end:
            self._view.set_follow(False)
        elif new_value > old_value and at_end:
            self._view.set_follow(True)

    def action_scroll_end(self) -> None:
        """`end` on the lines resumes follow, like the LogView's own binding."""
        self._view.action_follow()

    def on_resize(self, event: Resize) -> None:
        """Re-wrap for a new width, and stay at the end when following."""
        self._cache.maxsize = max(_CACHE_MIN, event.size.height)
        if self._view.wrap and self._wrap_width() != self._wrapped_for:
            self.relayout(None if self._view.follow else self.top_seq())
            return
        if not self._view.wrap:
            self._update_virtual_size()  # the view's width is part of the sideways extent
        if self._view.follow:
            self.scroll_to_end()

    # -- drawing -------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        """Theme or CSS changed: styled strips and component styles are stale."""
        super().notify_style_update()
        self._styles.clear()
        self._combined.clear()
        self._cache.clear()

    def invalidate(self, *seqs: int | None) -> None:
        """Forget the drawn strips of lines `seqs` (their look changed) and repaint."""
        for seq in seqs:
            if seq is not None:
                self._cache.discard(seq)
        self.refresh()

    def invalidate_all(self) -> None:
        """Forget every drawn strip and repaint."""
        self._cache.clear()
        self.refresh()

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            # The full style resolves `auto` and translucent colours against the background; the
            # highlights keep their own background, the rest only colour the line's (tinted) one.
            style = self.get_component_rich_style(name)
            if name not in _HIGHLIGHTS:
                style = Style(color=style.color, bold=style.bold, italic=style.italic, dim=style.dim)
            self._styles[name] = style
        return style

    def _on_base(self, name: str, base: Style) -> Style:
        """Component style `name` over the line's `base`, as Rich combines a span with its text's style."""
        key = (name, base)
        style = self._combined.get(key)
        if style is None:
            style = self._combined[key] = base + self._style(name)
        return style

    def _pass_values(self) -> tuple[int, int, int, int, Style]:
        """(scroll_x, scroll_y, the width lines fold at, the width rows are drawn, the widget's style).

        Rows are drawn as wide as the content region, the columns under the vertical scrollbar
        included, as Textual would pad them; lines fold and scroll within the rest.
        """
        scroll_x, scroll_y = self.scroll_offset
        return scroll_x, scroll_y, self._wrap_width(), self.content_region.width, self.rich_style

    def _plain_box(self) -> bool:
        """No padding, border, outline, tint, opacity or hatch: Textual's styling leaves the rows as drawn."""
        styles = self.styles
        return (
            not styles.gutter
            and not any(edge for edge, _ in styles.outline)
            and not styles.tint.a
            and styles.text_opacity == 1.0
            and self.opacity == 1.0
            and not (styles.has_rule("hatch") and styles.hatch != "none")
            and not (self.auto_links and self.hover_style.link_id)
        )

    def render_lines(self, crop: Region) -> list[Strip]:
        """Draw the rows in `crop`, working out the scroll offset, widths and style once for all of them.

        With a plain box (the usual case) the rows go to the compositor as drawn, through the app's
        line filters only: Textual's per-row styling would copy each row into a new Strip and read
        a dozen style properties per row, about as much work again as drawing it, in every frame of
        a flood. A test holds this way to the rows Textual's way makes.
        """
        self._pass = self._pass_values()
        try:
            if not self._plain_box():
                if self._drew_plain:
                    # Textual's cached styled rows are from before the plain passes: all drawn anew.
                    self._drew_plain = False
                    self.refresh()
                return super().render_lines(crop)
            self._drew_plain = True
            strips = [self.render_line(y) for y in crop.line_range]
            filters = self.get_line_filters()
            if filters:
                background = self.background_colors[1]
                for line_filter in filters:
                    strips = [strip.apply_filter(line_filter, background) for strip in strips]
            x1, x2 = crop.column_span
            if (x1, x2) != (0, self._pass[3]):
                strips = [strip.crop(x1, x2) for strip in strips]
            return strips
        finally:
            self._pass = None  # a row drawn outside a pass (visible_text) must see the state as it is now

    def render_line(self, y: int) -> Strip:
        """Draw screen row `y`: only rows on screen get here, and recent lines come from the cache."""
        scroll_x, scroll_y, fold, width, base = self._pass or self._pass_values()
        found = self._locate(scroll_y + y)
        if found is None:
            return Strip.blank(width, base)
        entry, part = found
        seq = self.entry_seq(entry)
        if seq == SEPARATOR:
            return Strip([Segment(_SEPARATOR_TEXT, self._style("log-view--separator"))]).crop_extend(
                0, width, base
            )
        if self._view.wrap:
            strips = self._strips(seq, 0, width, base, fold)
        else:
            strips = self._strips(seq, scroll_x, width, base)
        return strips[part] if part < len(strips) else Strip.blank(width, base)

    def _body(self, seq: int, text: str, code: int) -> Text:
        view = self._view
        body: Text | None = None
        if view.keep_colours and "\x1b" in text:
            body = Text.from_ansi(ansi_ready(text), end="")
            body.expand_tabs()
            if "\x1b" in body.plain:  # an escape Rich did not understand: never send it raw
                body = None
        if body is None:
            body = Text(plain_text(text), end="")
        if code in (SYSTEM, MARKER):
            body.stylize_before(self._style(_GUTTER_STYLE[code]))
        pattern = view.matches.pattern
        if pattern is not None:
            current = seq == view.matches.current
            style = self._style("log-view--current-match" if current else "log-view--match")
            for match in pattern.finditer(body.plain):
                if match.end() > match.start():
                    body.stylize(style, match.start(), match.end())
        return body

    def _segments(
        self, seq: int, code: int, stamp: str | None, base: Style
    ) -> tuple[list[Segment], int] | None:
        """The segments of a plain line (and its width in cells), or None if it needs `_body`'s styling.

        Most lines of a flood are plain stdout or stderr text: these are built directly as the Text
        of `_strips` would render them, span for span, without a Text per line.
        """
        view = self._view
        text = view.buffer.text(seq)
        if code > STDERR or seq == view.matches.current or (view.keep_colours and "\x1b" in text):
            return None
        body = plain_text(text)
        if view.matches.pattern is not None and view.matches.pattern.search(body):
            return None
        gutter = _GUTTER[code]
        cells = GUTTER_WIDTH + _cells(body)
        if not stamp:
            if code == STDOUT:  # no span at all: Rich renders the whole line as one unstyled segment
                return [Segment(gutter + body)], cells
            segments = [Segment(gutter, self._on_base(_GUTTER_STYLE[code], base))]
        else:
            shown = short_stamp(stamp) + " "
            cells += _cells(shown)
            segments = [
                Segment(gutter, self._on_base(_GUTTER_STYLE[code], base) if code else base),
                Segment(shown, self._on_base("log-view--timestamp", base)),
            ]
        if body:
            segments.append(Segment(body, base))
        return segments, cells

    def _strips(self, seq: int, scroll_x: int, width: int, base: Style, fold: int = 0) -> tuple[Strip, ...]:
        """The rows line `seq` takes on screen, `width` cells wide, scrolled sideways by `scroll_x`.

        `fold` is the width wrapped lines fold at (0: not wrapping).
        """
        key = (scroll_x, width, fold)
        cached = self._cache.get(seq)
        if cached is not None and cached[0] == key:
            return cached[1]
        view, buffer = self._view, self._view.buffer
        code = buffer.code(seq)
        stamp = buffer.stamp(seq) if view.show_timestamps else None
        plain = self._segments(seq, code, stamp, base)
        if plain is not None:
            segments, cells = plain
            if not fold and not scroll_x and cells < width:
                # The usual row: the line padded to the width, one Strip instead of three.
                segments.append(Segment(" " * (width - cells), base))
                strip = Strip(segments, width)
                self._cache.set(seq, (key, (strip,)))
                return (strip,)
            strip = Strip(segments, cells)
        else:
            line = Text(style=base, no_wrap=True, end="")
            if seq == view.matches.current:
                line.append(_CURRENT_GUTTER, self._style("log-view--current-match"))
            else:
                line.append(_GUTTER[code], self._style(_GUTTER_STYLE[code]) if code else None)
            if stamp:
                line.append(short_stamp(stamp) + " ", self._style("log-view--timestamp"))
            line.append_text(self._body(seq, buffer.text(seq), code))
            strip = Strip(line.render(self.app.console))
        strips: tuple[Strip, ...]
        if not fold:
            strips = (strip.crop_extend(scroll_x, scroll_x + width, base),)
        else:
            # Fold at the width (cell-exact, like `less`), continuation rows indented under the text,
            # so the heights measured in `_heights` hold without rendering every line.
            prefix = GUTTER_WIDTH + (_cells(short_stamp(stamp)) + 1 if stamp else 0)
            room = max(1, fold - prefix)
            total = strip.cell_length
            cuts = [*range(prefix + room, total, room), total]
            indent = Strip.blank(prefix, base)
            strips = tuple(
                (part if i == 0 else Strip.join([indent, part])).crop_extend(0, width, base)
                for i, part in enumerate(strip.divide(cuts))
            )
        self._cache.set(seq, (key, strips))
        return strips


class LogPrompt(Input):
    """The one-line prompt at the bottom of a LogView, for a search or a file name; `escape` closes it."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("log.prompt")

    class Dismissed(Message):
        """Posted when the prompt is closed without an answer."""

    mode = ""
    """What the answer is for: "search" or "save"."""

    def action_dismiss(self) -> None:
        """Close without acting."""
        self.post_message(self.Dismissed())


class LogStatus(Widget):
    """The status row of a LogView: lines held, follow or paused, filter, match i/N, flags."""

    DEFAULT_CSS = """
    LogStatus {
        height: 1;
        background: $panel;
        color: $text-muted;
        padding: 0 1;
    }
    """

    def __init__(self, view: LogView) -> None:
        super().__init__()
        self._view = view
        self._shown: str | None = None  # the status last rendered

    def render(self) -> str:
        """The LogView's status, as markup with theme colours."""
        self._shown = self._view.status_text()
        return self._shown

    def changed(self) -> None:
        """Redraw if the status differs from what is shown.

        A flood into a full ring leaves it as it was: redrawing it anyway would parse its markup
        and lay it out again in every frame, a good part of a frame's cost.
        """
        if self._view.status_text() != self._shown:
            self.refresh()


STREAM_ACTIONS = frozenset({"follow", "pick_range", "marker", "toggle_timestamps"})
"""Actions that only mean something for lines that keep coming (follow, another range, a marker
with the time, the engine's timestamps): not offered on a document."""


class LogView(Widget):
    """The log widget for every stream: a bounded ring of lines with virtual scrolling, follow, search.

    Feed it with `append()` on the UI thread or `attach()` an async iterator of batches. Keys:
    `/` search (text, or `~regex`), `n`/`N` next/previous match, `f` only matches (with
    `context_lines` either side), `t` timestamps, `w` wrap, `c` colours, `ctrl+s` save, `m` marker,
    `s` range, `end`/`G` follow, `y` copy. Every binding has an id (`log.*`) for user keymaps.
    """

    DEFAULT_CSS = """
    LogView {
        height: 1fr;
        & > LogLines { height: 1fr; }
        & > #log-prompt-row {
            height: 1;
            display: none;
            background: $boost;
            &.-open { display: block; }
            & > Label { width: auto; padding: 0 1; color: $primary; text-style: bold; }
            & > LogPrompt { width: 1fr; height: 1; border: none; padding: 0; background: $boost; }
        }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = bindings("log")

    class RangeRequested(Message):
        """The user picked another range (`s`): the owner should `clear()` and re-`attach()` the source.

        `since` is a relative duration ("5m", "1h", "24h") or None, `tail` a line count or None;
        both None means everything the source has.
        """

        def __init__(
            self, since: str | None, tail: int | None, label: str = "", log_view: LogView | None = None
        ) -> None:
            super().__init__()
            self.since = since
            self.tail = tail
            self.label = label
            self.log_view = log_view

        @property
        def control(self) -> LogView | None:
            """The LogView that asked."""
            return self.log_view

    def __init__(
        self,
        max_lines: int = 100_000,
        *,
        context_lines: int = 2,
        source_name: str = "log",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.buffer = LogBuffer(max_lines)
        """The lines held (read it, don't write to it: use `append`)."""
        self.matches = Matches()
        self.filtered = FilteredView(context_lines)
        self.source_name = source_name
        """Names the source in the default file name of a save."""
        self.follow = True
        self.filtering = False
        self.show_timestamps = False
        self.wrap = False
        self.keep_colours = True
        self.range_label: str | None = None
        self.document = False
        """A fixed text rather than a stream (an inspect, a log read once): the keys only a
        stream has a use for (`STREAM_ACTIONS`) are not offered, nor is "following" said."""
        self.unseen = 0
        """Lines that arrived while paused."""
        self.flush_count = 0
        """How many times an attached source's lines were flushed into the buffer."""
        self._pending = LineBatch()
        self._flush_timer: Timer | None = None
        self._last_flush = 0.0
        self._flooding = False  # the last flush brought a screenful or more
        self._lines = LogLines(self)
        self._status = LogStatus(self)
        self._prompt = LogPrompt()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A document offers no key that only a stream has a use for."""
        return not (self.document and action in STREAM_ACTIONS)

    def compose(self) -> ComposeResult:
        """The lines, the prompt (hidden until `/` or `ctrl+s`), the status row."""
        yield self._lines
        with Horizontal(id="log-prompt-row"):
            yield Label("/")
            yield self._prompt
        yield self._status

    def focus(self, scroll_visible: bool = True) -> Self:
        """Focusing the view focuses its lines, where the keys go."""
        self._lines.focus(scroll_visible)
        return self

    @property
    def lines_widget(self) -> LogLines:
        """The scrolling body (the Line API widget)."""
        return self._lines

    @property
    def max_lines(self) -> int:
        """How many lines the ring holds before the oldest fall off."""
        return self.buffer.max_lines

    @property
    def context_lines(self) -> int:
        """Lines shown either side of a match when filtering."""
        return self.filtered.context

    @context_lines.setter
    def context_lines(self, value: int) -> None:
        with self._changing_layout():
            self.filtered.context = max(0, value)
            if self.filtering:
                self._rebuild_filter()

    @property
    def line_count(self) -> int:
        """How many lines the buffer holds (no `__len__`: an empty widget must stay truthy for Textual)."""
        return len(self.buffer)

    def line(self, index: int) -> LogLine:
        """The line at buffer `index` (0 is the oldest held)."""
        return self.buffer[index]

    # -- input ---------------------------------------------------------------------------------

    def append(self, lines: Sequence[LogLine]) -> None:
        """Add lines now; call it on the UI thread (a source in a thread uses `call_from_thread`)."""
        self.flush()
        if lines:
            self._ingest(lines)

    def add_marker(self) -> None:
        """Add a marker line with the wall time, to tell "before" from "after"."""
        self.flush()
        self._ingest((), marker=f"──── marker {datetime.now():%H:%M:%S} ────")

    def clear(self) -> None:
        """Drop every line (the search stays), e.g. before re-attaching a source for another range."""
        self._pending = LineBatch()
        self.buffer.clear()
        self.matches.set(self.matches.query, self.matches.pattern, self.buffer)
        self._rebuild_filter()
        self.unseen = 0
        self.follow = True
        self._lines.reset_extent()
        self._lines.relayout()
        self._status.changed()

    def attach(self, source: AsyncIterator[Sequence[LogLine]]) -> Worker[None]:
        """Consume `source` (batches of lines) in a worker, replacing any source attached before.

        Lines are flushed to the screen at most ~30 times a second however fast they come (~20 in a
        flood, when each flush brings a screenful). A `BerthError` from the source is shown as a
        system line, and so is its end.
        """
        # A coroutine function, not a coroutine: a worker replaced before it starts leaves nothing unawaited.
        return self.run_worker(
            partial(self._consume, source),
            name="log source",
            group="log-view.source",
            exclusive=True,
            exit_on_error=False,
        )

    def detach(self) -> None:
        """Stop consuming the attached source (lines already received are kept)."""
        self.workers.cancel_group(self, "log-view.source")
        self.flush()

    async def _consume(self, source: AsyncIterator[Sequence[LogLine]]) -> None:
        try:
            async for batch in source:
                if batch:
                    pending = self._pending
                    pending.add(batch)
                    del batch  # its lines now live in the columns only
                    # Whatever lies beyond one buffer's worth would only fall off at the next flush.
                    if len(pending) > self.buffer.max_lines:
                        pending.keep_last(self.buffer.max_lines)
                    self._schedule_flush()
                # Let the UI breathe between batches even if the source never really waits.
                await asyncio.sleep(0)
        except BerthError as exc:
            ending = LogLine(str(exc), "system", _now_stamp())
        except Exception as exc:
            ending = LogLine(f"The stream failed. {log_unexpected(exc)}", "system", _now_stamp())
        else:
            ending = LogLine("stream ended", "system", _now_stamp())
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        self.append([ending])

    def _schedule_flush(self) -> None:
        if self._flush_timer is not None:
            return
        interval = FLOOD_FLUSH_INTERVAL if self._flooding else FLUSH_INTERVAL
        wait = self._last_flush + interval - monotonic()
        if wait <= 0:
            self.flush()
        else:
            self._flush_timer = self.set_timer(wait, self._timed_flush, name="log flush")

    def _timed_flush(self) -> None:
        self._flush_timer = None
        self.flush()

    def flush(self) -> None:
        """Move the lines an attached source delivered into the buffer now."""
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        if not self._pending:
            return
        lines, self._pending = self._pending, LineBatch()
        self._last_flush = monotonic()
        self._flooding = len(lines) >= max(1, self._lines.size.height)
        self.flush_count += 1
        self._ingest(lines)

    def _ingest(self, lines: Sequence[LogLine] | LineBatch, marker: str | None = None) -> None:
        buffer = self.buffer
        old_end, old_count = buffer.end, len(buffer)
        dropped = buffer.extend(lines) if marker is None else buffer.append_marker(marker, _now_stamp())
        added = buffer.end - old_end
        if not self.follow:
            self.unseen += added
        found: list[int] = []
        if self.matches.pattern is not None:
            self.matches.trim(buffer.first)
            found = self.matches.scan(buffer, old_end, buffer.end)
        if self.filtering:
            trimmed = self.filtered.trim(buffer.first)
            self.filtered.extend(found, buffer.first, buffer.end)
        else:
            trimmed = min(dropped, old_count)
        self._lines.lines_added(trimmed, added)
        self._status.changed()

    # -- follow, search, filter ---------------------------------------------------------------

    def set_follow(self, follow: bool) -> None:
        """Follow new lines, or pause (the status then counts what arrives)."""
        if follow != self.follow:
            self.follow = follow
            if follow:
                self.unseen = 0
            self._status.changed()

    def action_follow(self) -> None:
        """Jump to the newest line and follow from there."""
        self.set_follow(True)
        self._lines.scroll_to_end()

    def search(self, query: str) -> int | None:
        """Search for `query` (text, case-insensitive; `~` first: a regular expression).

        Goes to the last match at or above the bottom of the screen (when following, the newest),
        else the first below it; returns its buffer index, or None. An empty query ends the search.
        """
        if not query:
            self.clear_search()
            return None
        try:
            pattern = compile_query(query)
        except QueryError as exc:
            self.notify(str(exc), title="Search", severity="error")
            return None
        anchor = self._lines.bottom_seq()
        self._set_search(query, pattern)
        target = self.matches.at_or_before(anchor) if anchor is not None else None
        if target is None:
            target = self.matches.after(self.buffer.first - 1 if anchor is None else anchor)
        if target is None:
            self.notify(f"No line matches {query!r}.", title="Search", severity="warning")
            return None
        return self._go_to(target)

    def clear_search(self) -> None:
        """End the search (and the filter, which needs it)."""
        self._set_search("", None)

    def _set_search(self, query: str, pattern: re.Pattern[str] | None) -> None:
        if not self.filtering:  # only the highlights change: no new layout needed
            self.matches.set(query, pattern, self.buffer)
            self._lines.invalidate_all()
            self._status.changed()
            return
        with self._changing_layout():
            self.matches.set(query, pattern, self.buffer)
            if pattern is None:
                self.filtering = False
            else:
                self._rebuild_filter()

    def next_match(self) -> int | None:
        """Go to the next match below (wrapping to the first); returns its buffer index."""
        if not self._have_matches():
            return None
        current = self.matches.current
        if current is None:
            top = self._lines.top_seq()
            current = (top if top is not None else self.buffer.first) - 1
        target = self.matches.after(current)
        if target is None:
            target = self.matches.seqs[0]
            self.notify("Search wrapped around to the first match.", title="Search", timeout=2)
        return self._go_to(target)

    def previous_match(self) -> int | None:
        """Go to the previous match above (wrapping to the last); returns its buffer index."""
        if not self._have_matches():
            return None
        current = self.matches.current
        if current is None:
            bottom = self._lines.bottom_seq()
            current = (bottom if bottom is not None else self.buffer.end - 1) + 1
        target = self.matches.before(current)
        if target is None:
            target = self.matches.seqs[-1]
            self.notify("Search wrapped around to the last match.", title="Search", timeout=2)
        return self._go_to(target)

    def action_next_match(self) -> None:
        """Go to the next match."""
        self.next_match()

    def action_previous_match(self) -> None:
        """Go to the previous match."""
        self.previous_match()

    def action_copy(self) -> None:
        """Copy the line of the match you are on, else the lines on screen, to the clipboard
        (OSC 52: through SSH and tmux too, where the terminal allows it)."""
        index = self.current_match
        text = self.buffer[index].text if index is not None else "\n".join(self.visible_text()).rstrip("\n")
        self.app.copy_to_clipboard(text)
        lines = text.count("\n") + 1
        self.notify(f"Copied {lines} line{'s' if lines > 1 else ''} ({len(text):,} characters).", timeout=2)

    @property
    def current_match(self) -> int | None:
        """The buffer index of the match you are on, if any."""
        current = self.matches.current
        return None if current is None else current - self.buffer.first

    def _have_matches(self) -> bool:
        if self.matches.pattern is None:
            self.notify("Nothing to look for yet: press / to search.", title="Search", severity="warning")
            return False
        if not self.matches.seqs:
            self.notify(f"No line matches {self.matches.query!r}.", title="Search", severity="warning")
            return False
        return True

    def _go_to(self, seq: int) -> int:
        old, self.matches.current = self.matches.current, seq
        self._lines.invalidate(old, seq)
        self.set_follow(False)
        self._lines.scroll_to_seq(seq)
        self._status.changed()
        return seq - self.buffer.first

    def _rebuild_filter(self) -> None:
        self.filtered.rebuild(self.matches.seqs, self.buffer.first, self.buffer.end)

    @contextlib.contextmanager
    def _changing_layout(self) -> Iterator[None]:
        # Note the line at the top before the change, to show it at the top after.
        anchor = None if self.follow else self._lines.top_seq()
        yield
        self._lines.relayout(anchor)
        self._status.changed()

    # -- toggles -------------------------------------------------------------------------------

    def action_toggle_filter(self) -> None:
        """Show only the lines matching the search (with context), or all lines again."""
        if not self.filtering and self.matches.pattern is None:
            self.notify("Search first (/); then f shows only the matching lines.", severity="warning")
            return
        with self._changing_layout():
            self.filtering = not self.filtering
            if self.filtering:
                self._rebuild_filter()
        if self.filtering and self.matches.current is not None:
            self._lines.scroll_to_seq(self.matches.current)  # the match you were on, in its context

    def action_toggle_timestamps(self) -> None:
        """Show the engine's timestamps before each line, or hide them."""
        with self._changing_layout():
            self.show_timestamps = not self.show_timestamps

    def action_toggle_wrap(self) -> None:
        """Wrap long lines, or keep them on one row and scroll sideways."""
        with self._changing_layout():
            self.wrap = not self.wrap

    def action_toggle_colours(self) -> None:
        """Keep the ANSI colours in lines, or strip them."""
        self.keep_colours = not self.keep_colours
        self._lines.invalidate_all()
        self._status.changed()

    def action_marker(self) -> None:
        """Add a marker line."""
        self.add_marker()

    # -- prompt, save, range -------------------------------------------------------------------

    def action_open_search(self) -> None:
        """Ask for a search at the bottom of the view."""
        self._open_prompt("search", "/", self.matches.query, "text, or ~regex · enter · esc")

    def action_open_save(self) -> None:
        """Ask where to save, offering a new file in the home folder."""
        self._open_prompt("save", "save to", self.default_save_path(), "file name · enter · esc")

    def _open_prompt(self, mode: str, label: str, value: str, placeholder: str) -> None:
        prompt = self._prompt
        prompt.mode, prompt.placeholder, prompt.value = mode, placeholder, value
        self.query_one("#log-prompt-row > Label", Label).update(label)
        self.query_one("#log-prompt-row").add_class("-open")
        self.screen.set_focus(prompt)  # now, so keys typed right after the key land in the prompt
        prompt.cursor_position = len(value)

    def _close_prompt(self) -> None:
        self.query_one("#log-prompt-row").remove_class("-open")
        self._prompt.mode = ""
        self._lines.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Run the search or the save the prompt was opened for."""
        if event.input is not self._prompt:
            return
        event.stop()
        mode, value = self._prompt.mode, event.value.strip()
        self._close_prompt()
        if mode == "search":
            self.search(event.value)
        elif mode == "save" and value:
            self.save(value)

    def on_log_prompt_dismissed(self, event: LogPrompt.Dismissed) -> None:
        """Close the prompt without acting."""
        event.stop()
        self._close_prompt()

    def default_save_path(self) -> str:
        """Where `ctrl+s` offers to save: `~/berth-<source>-<date-time>.log`."""
        source = re.sub(r"[^\w.-]+", "-", self.source_name).strip("-") or "log"
        return f"~/berth-{source}-{datetime.now():%Y%m%d-%H%M%S}.log"

    def export_lines(self) -> Iterator[str]:
        """The lines as a save writes them: what the view shows (filtered or all), timestamps if shown.

        ANSI colours are kept when shown (for `less -R`), and a filter's separators are written `--`
        as grep writes them.
        """
        buffer = self.buffer
        seqs: Iterable[int] = self.filtered.rows if self.filtering else range(buffer.first, buffer.end)
        keep, stamps = self.keep_colours, self.show_timestamps
        for seq in seqs:
            if seq == SEPARATOR:
                yield "--"
                continue
            text = buffer.text(seq)
            text = ansi_ready(text) if keep else plain_text(text)
            stamp = buffer.stamp(seq) if stamps else None
            yield f"{stamp} {text}" if stamp else text

    def save(self, path: str | Path) -> Path | None:
        """Write the lines to a new file at `path` (`~` expanded); returns it, or None having said why not."""
        self.flush()
        target = Path(path).expanduser()
        lines = list(self.export_lines())
        try:
            fd = open_private(target, os.O_WRONLY | os.O_EXCL)  # a new file, 0600: logs carry secrets
            with open(fd, "w", encoding="utf-8", errors="replace") as out:
                out.write("\n".join(lines) + "\n" if lines else "")
        except OSError as exc:
            self.notify(_save_error(target, exc), title="Log not saved", severity="error")
            return None
        count = sum(line != "--" for line in lines) if self.filtering else len(lines)
        self.notify(f"Saved {count:,} lines to {target}.", title="Log saved")
        return target

    def action_pick_range(self) -> None:
        """Offer the ranges (tail, since) and ask the owner for the one picked."""
        choices = [(label, label) for label, _, _ in RANGES]
        self.app.push_screen(PickerScreen("Show which lines", choices, self.range_label), self._range_picked)

    def _range_picked(self, choice: str | None) -> None:
        for label, since, tail in RANGES:
            if label == choice:
                self.range_label = label
                self.post_message(self.RangeRequested(since, tail, label, self))
                self._status.changed()

    # -- reading back --------------------------------------------------------------------------

    def status_text(self) -> str:
        """The status row: lines held, follow or paused, filter, match i/N, flags (markup)."""
        buffer, matches = self.buffer, self.matches
        parts = [f"{len(buffer):,} / {buffer.max_lines:,} lines"]
        if self.document:
            pass  # nothing arrives: neither following nor paused
        elif self.follow:
            parts.append("[$success]following[/]")
        else:
            parts.append(f"[$warning]paused · {self.unseen:,} new lines — End to follow[/]")
        if self.filtering:
            parts.append(f"[$accent]filter ±{self.filtered.context}[/]")
        if matches.pattern is not None:
            where = matches.position(matches.current) if matches.current is not None else 0
            parts.append(f"/{escape(matches.query)} match {where or '-'}/{len(matches):,}")
        flags = [
            name
            for name, on in (
                ("wrap", self.wrap),
                ("timestamps", self.show_timestamps),
                ("colours", self.keep_colours),
            )
            if on
        ]
        if flags:
            parts.append(" ".join(flags))
        if self.range_label:
            parts.append(self.range_label)
        return " · ".join(parts)

    def visible_text(self) -> list[str]:
        """The text of the rows on screen, top to bottom (for tests and for copying)."""
        lines = self._lines
        region = lines.scrollable_content_region  # rows reach under the scrollbar: leave that out
        return [lines.render_line(y).crop(0, region.width).text.rstrip() for y in range(region.height)]
