"""The logic behind `LogView`, kept apart from Textual: the ring of lines, search matches, the filtered view.

Lines are addressed by a sequence number ("seq"): the count of lines appended before them since the
buffer was made. A seq never changes while the line is held, so matches and filtered rows stay
valid as old lines fall off the front; a buffer index (0 = oldest line held) is `seq - buffer.first`.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import TypeVar

from backends.streams import LogLine

STDOUT, STDERR, SYSTEM, MARKER = 0, 1, 2, 3
"""How a line's stream is stored: one byte a line. MARKER is a `system` line added with `m`."""

_T = TypeVar("_T")

SEPARATOR = -1
"""A row of the filtered view that stands for skipped lines between two chunks of context."""

_CODES = {"stdout": STDOUT, "stderr": STDERR, "system": SYSTEM}
# A LogLine's fields, by position: (text, stream, timestamp).
_LINE_TEXT, _LINE_STREAM, _LINE_STAMP = itemgetter(0), itemgetter(1), itemgetter(2)
_STREAMS = ("stdout", "stderr", "system", "system")

# The pattern Rich's AnsiDecoder tokenizes with, so that stripping escapes here gives exactly the
# text that `Text.from_ansi` shows: wrapped heights and search spans then agree with the rendering.
_ANSI = re.compile(r"(?:\x1b[0-?])|(?:\x1b\](.*?)\x1b\\)|(?:\x1b([(@-Z\\-_]|\[[0-?]*[ -/]*[@-~]))")
# Anything a terminal would act on rather than print (and what str.splitlines splits on).
_NEEDS_WORK = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_CONTROL_BUT_ESC = re.compile("[\x00-\x08\x0a-\x1a\x1c-\x1f\x7f\x85\u2028\u2029]")
_STAMP = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?")


def _last_overwrite(text: str) -> str:
    # A carriage return inside a line is a progress bar redrawing itself: keep what a terminal
    # would end up showing (Rich's decoder does the same), and drop a trailing one (CRLF output).
    if "\r" in text:
        text = text.rstrip("\r").rsplit("\r", 1)[-1]
    return text


def plain_text(text: str) -> str:
    """`text` as it is shown with colours stripped: no escapes, tabs expanded, control characters as �.

    Search matches against this text, and wrapping measures it.
    """
    if not _NEEDS_WORK.search(text):
        return text  # the common case: nothing to do, no copy
    text = _last_overwrite(text)
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if "\t" in text:
        text = text.expandtabs(8)
    return _CONTROL.sub("\ufffd", text)


def plain_texts(texts: list[str]) -> list[str]:
    """`plain_text` of each of `texts`, with one scan of them all for the usual case of nothing to do."""
    # isprintable() scans in C far faster than a regex; it is also False for a few harmless
    # characters (no-break space, zero-width ones), which then take the slower way to the same result.
    if "".join(texts).isprintable():
        return texts
    return [plain_text(text) for text in texts]


def ansi_ready(text: str) -> str:
    """`text` made safe for `rich.text.Text.from_ansi`: escapes kept, other control characters as �.

    Newlines and their kin would make `from_ansi` split one log line into several.
    """
    return _CONTROL_BUT_ESC.sub("\ufffd", _last_overwrite(text))


def short_stamp(stamp: str) -> str:
    """An engine's RFC 3339 timestamp shortened for the screen: `2024-05-01 12:34:56.123Z`.

    Anything that does not look like RFC 3339 is shown as it came.
    """
    found = _STAMP.fullmatch(stamp)
    if found is None:
        return stamp
    date, time, fraction, zone = found.groups()
    return f"{date} {time}{'.' + fraction[:3] if fraction else ''}{zone or ''}"


class QueryError(ValueError):
    """A search query that cannot be used; `str()` is a sentence for the user."""


def compile_query(query: str) -> re.Pattern[str]:
    """Turn a search query into a case-insensitive pattern.

    Plain text is a substring search; a query starting with `~` is a regular expression.
    Raises `QueryError` when the regular expression does not compile.
    """
    if query.startswith("~"):
        try:
            return re.compile(query[1:], re.IGNORECASE)
        except re.error as exc:
            raise QueryError(f"{query[1:]!r} is not a valid regular expression: {exc}.") from exc
    return re.compile(re.escape(query), re.IGNORECASE)


class LineBatch:
    """Lines waiting to go into a `LogBuffer`, stored column-wise as the buffer stores them.

    A source's batches are taken apart into these columns as they arrive, so their `LogLine`s
    die at once instead of waiting for the next flush: objects alive that long reach the garbage
    collector's oldest generation, and a flood of them sets off its slow full collections.
    """

    __slots__ = ("codes", "stamps", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.stamps: list[str | None] = []
        self.codes = bytearray()

    def __len__(self) -> int:
        return len(self.codes)

    def add(self, lines: Sequence[LogLine]) -> None:
        """Add `lines` after those held."""
        self.texts.extend(map(_LINE_TEXT, lines))
        self.stamps.extend(map(_LINE_STAMP, lines))
        self.codes.extend(map(_CODES.get, map(_LINE_STREAM, lines), repeat(STDOUT)))

    def keep_last(self, count: int) -> None:
        """Drop all but the newest `count` lines."""
        drop = max(0, len(self) - count)
        del self.texts[:drop], self.stamps[:drop], self.codes[:drop]


class LogBuffer:
    """A bounded ring of log lines: the newest `max_lines` are kept, older ones fall off the front.

    Lines are stored column-wise (a list of texts, a list of timestamps, a byte a line for the
    stream) rather than as objects, so a full buffer costs little more than the text itself, and a
    batch is written with a few slice assignments.
    """

    def __init__(self, max_lines: int = 100_000) -> None:
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        self.max_lines = max_lines
        self.first = 0
        """The seq of the oldest line held."""
        self.end = 0
        """The seq the next line will get (lines held are `first` to `end - 1`)."""
        self._base = 0  # the seq stored at physical index 0 before the ring first wrapped
        self._texts: list[str] = []
        self._stamps: list[str | None] = []
        self._codes = bytearray()

    def __len__(self) -> int:
        return self.end - self.first

    def __getitem__(self, index: int) -> LogLine:
        """The line at buffer `index` (0 is the oldest held, -1 the newest)."""
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("log buffer index out of range")
        return self.line(self.first + index)

    def _pos(self, seq: int) -> int:
        return (seq - self._base) % self.max_lines

    def extend(self, lines: Sequence[LogLine] | LineBatch) -> int:
        """Append `lines`; returns how many old lines fell off the front to make room."""
        if not isinstance(lines, LineBatch):
            batch = LineBatch()
            batch.add(lines)
            lines = batch
        return self._write(lines.texts, lines.stamps, lines.codes)

    def append_marker(self, text: str, stamp: str | None) -> int:
        """Append a marker line (a `system` line shown distinctly); returns how many lines fell off."""
        return self._write([text], [stamp], bytes([MARKER]))

    def _write(self, texts: list[str], stamps: list[str | None], codes: bytes | bytearray) -> int:
        count = len(texts)
        cap = self.max_lines
        old_first = self.first
        if count >= cap:
            # The batch fills the ring by itself: keep its tail and start the ring over from there.
            self._texts, self._stamps, self._codes = texts[-cap:], stamps[-cap:], bytearray(codes[-cap:])
            self.end += count
            self.first = self._base = self.end - cap
            return self.first - old_first
        start = self.end
        done = 0
        filled = len(self._texts)
        if filled < cap:  # still growing: plain appends until the arrays reach capacity
            done = min(cap - filled, count)
            self._texts.extend(texts[:done])
            self._stamps.extend(stamps[:done])
            self._codes.extend(codes[:done])
        while done < count:  # full: overwrite the oldest, in at most two runs either side of the seam
            pos = self._pos(start + done)
            run = min(count - done, cap - pos)
            self._texts[pos : pos + run] = texts[done : done + run]
            self._stamps[pos : pos + run] = stamps[done : done + run]
            self._codes[pos : pos + run] = codes[done : done + run]
            done += run
        self.end += count
        self.first = max(self.first, self.end - cap)
        return self.first - old_first

    def clear(self) -> None:
        """Drop every line (seqs carry on from where they were)."""
        self._texts.clear()
        self._stamps.clear()
        self._codes.clear()
        self.first = self._base = self.end

    def text(self, seq: int) -> str:
        """The text of line `seq`."""
        return self._texts[self._pos(seq)]

    def stamp(self, seq: int) -> str | None:
        """The engine's timestamp of line `seq`, if it had one."""
        return self._stamps[self._pos(seq)]

    def code(self, seq: int) -> int:
        """The stream code (STDOUT, STDERR, SYSTEM, MARKER) of line `seq`."""
        return self._codes[self._pos(seq)]

    def line(self, seq: int) -> LogLine:
        """Line `seq` as a `LogLine` again."""
        pos = self._pos(seq)
        return LogLine(self._texts[pos], _STREAMS[self._codes[pos]], self._stamps[pos])

    def texts(self, start: int, stop: int) -> list[str]:
        """The texts of lines `start` to `stop - 1` (seqs, clipped to what is held), in order."""
        return self._column(self._texts, start, stop)

    def stamps(self, start: int, stop: int) -> list[str | None]:
        """The timestamps of lines `start` to `stop - 1` (seqs, clipped to what is held), in order."""
        return self._column(self._stamps, start, stop)

    def _column(self, column: list[_T], start: int, stop: int) -> list[_T]:
        start, stop = max(start, self.first), min(stop, self.end)
        if start >= stop:
            return []
        lo, hi = self._pos(start), self._pos(stop - 1) + 1
        if lo < hi:
            return column[lo:hi]
        return column[lo:] + column[:hi]


class Matches:
    """The seqs of the lines that match the current search, kept in step with a `LogBuffer`.

    `current` is the seq of the match the user is on (`n`/`N` move it), or None.
    """

    def __init__(self) -> None:
        self.query = ""
        self.pattern: re.Pattern[str] | None = None
        self.seqs = array("q")
        self.current: int | None = None
        self._needle: str | None = None

    def __len__(self) -> int:
        return len(self.seqs)

    def set(self, query: str, pattern: re.Pattern[str] | None, buffer: LogBuffer) -> None:
        """Search the whole buffer for `pattern` (None: no search)."""
        self.query, self.pattern, self.current = query, pattern, None
        # Plain text: a lower-cased substring test is several times faster than an IGNORECASE regex.
        self._needle = query.lower() if pattern is not None and not query.startswith("~") else None
        self.seqs = array("q")
        if pattern is not None:
            self.scan(buffer, buffer.first, buffer.end)

    def scan(self, buffer: LogBuffer, start: int, stop: int) -> list[int]:
        """Add the matches among lines `start` to `stop - 1` (newer than any known); returns them."""
        if self.pattern is None:
            return []
        start = max(start, buffer.first)
        texts = plain_texts(buffer.texts(start, stop))
        needle = self._needle
        if needle is not None:
            found = [seq for seq, text in enumerate(texts, start) if needle in text.lower()]
        else:
            search = self.pattern.search
            found = [seq for seq, text in enumerate(texts, start) if search(text)]
        self.seqs.extend(found)
        return found

    def trim(self, first: int) -> None:
        """Forget matches on lines that fell off the buffer (seq below `first`)."""
        drop = bisect_left(self.seqs, first)
        if drop:
            del self.seqs[:drop]
        if self.current is not None and self.current < first:
            self.current = None

    def at_or_before(self, seq: int) -> int | None:
        """The last match at or before `seq`, if any."""
        i = bisect_right(self.seqs, seq)
        return self.seqs[i - 1] if i else None

    def after(self, seq: int) -> int | None:
        """The first match after `seq`, if any."""
        i = bisect_right(self.seqs, seq)
        return self.seqs[i] if i < len(self.seqs) else None

    def before(self, seq: int) -> int | None:
        """The last match before `seq`, if any."""
        i = bisect_left(self.seqs, seq)
        return self.seqs[i - 1] if i else None

    def position(self, seq: int) -> int:
        """The 1-based number of match `seq` among all matches (0 if it is not one)."""
        i = bisect_left(self.seqs, seq)
        return i + 1 if i < len(self.seqs) and self.seqs[i] == seq else 0


class FilteredView:
    """The rows shown when filtering: matching lines with `context` lines either side.

    `rows` holds seqs in order, with SEPARATOR between chunks that are not adjacent. It grows as
    lines arrive (a match pulls in the lines before it, and the next lines complete its trailing
    context) and loses rows from the front as the buffer drops lines, never rebuilt per batch.
    """

    def __init__(self, context: int = 2) -> None:
        self.context = context
        self.rows = array("q")
        self._last = -1  # the last seq put in rows
        self._until = -2  # the last seq owed as trailing context of a match

    def rebuild(self, matches: Iterable[int], first: int, end: int) -> None:
        """Start over from the given matches (seqs, ascending) of a buffer holding `first` to `end - 1`."""
        self.rows = array("q")
        self._last, self._until = first - 1, first - 2
        self.extend(matches, first, end)

    def extend(self, matches: Iterable[int], first: int, end: int) -> None:
        """Take in new matches (ascending, newer than earlier ones) now that lines up to `end - 1` exist."""
        context = self.context
        for match in matches:
            start = max(match - context, first, self._last + 1)
            if start <= self._until + 1:  # touches the chunk being built: extend it
                self._until = max(self._until, match + context)
                continue
            self._emit(min(self._until, end - 1))
            if self.rows:
                self.rows.append(SEPARATOR)
            self._last, self._until = start - 1, match + context
        self._emit(min(self._until, end - 1))

    def _emit(self, upto: int) -> None:
        if upto > self._last:
            self.rows.extend(range(self._last + 1, upto + 1))
            self._last = upto

    def trim(self, first: int) -> int:
        """Drop rows of lines that fell off the buffer (and a separator left leading); returns how many."""
        rows = self.rows
        drop = 0
        # SEPARATOR is below any seq, so one comparison takes leading separators too.
        while drop < len(rows) and rows[drop] < first:
            drop += 1
        if drop:
            del rows[:drop]
        return drop

    def index(self, seq: int) -> int | None:
        """The row showing line `seq`, if it is shown."""
        try:
            return self.rows.index(seq)
        except ValueError:
            return None

    def index_at_or_after(self, seq: int) -> int | None:
        """The first row showing line `seq` or a later one (for keeping the view still on toggles)."""
        for i, row in enumerate(self.rows):
            if row >= seq:
                return i
        return None
