"""Container logs as an async iterator of line batches, resumed without loss or doubling.

berth always asks the engine for timestamps, remembers the last one it passed on (and how many
lines carried exactly that stamp), and after a broken stream or an engine restart asks again
`since` that instant, dropping what it already delivered. The user sees timestamps only if asked.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import repeat
from operator import itemgetter, sub
from typing import NamedTuple

from backends.engine_http import EngineHttp
from backends.errors import BerthError, Invalid, Unreachable
from backends.streams import LogLine
from backends.units import parse_duration

_STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}
_HEADER = struct.Struct(">BxxxL")
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_LINES = 256
"""The most lines `follow_logs` yields in one batch."""


def timestamp_key(stamp: str) -> tuple[int, int]:
    """(seconds since the epoch, nanoseconds) of an RFC 3339 stamp with up to 9 fractional digits."""
    head, dot, rest = stamp.partition(".")
    if not dot:
        return int(datetime.fromisoformat(stamp).timestamp()), 0
    digits = 0
    while digits < len(rest) and rest[digits].isdigit():
        digits += 1
    seconds = int(datetime.fromisoformat(head + (rest[digits:] or "Z")).timestamp())
    return seconds, int((rest[:digits] + "000000000")[:9])


def epoch_seconds(stamp: object) -> float:
    """Seconds since the epoch of an Engine API time (RFC 3339); 0 when absent, unreadable or
    Docker's "never" (year 1)."""
    if not isinstance(stamp, str) or not stamp or stamp.startswith("0001-"):
        return 0.0
    try:
        seconds, nanos = timestamp_key(stamp)
    except ValueError:
        return 0.0
    return seconds + nanos / 1e9


def since_value(stamp: str) -> str:
    """The Engine API's `since` for an RFC 3339 stamp: `SECONDS.NANOSECONDS`."""
    seconds, nanos = timestamp_key(stamp)
    return f"{seconds}.{nanos:09d}"


class RawLines(NamedTuple):
    """Lines cut from the stream, column-wise: each one's stream name, and its bytes without the newline."""

    streams: list[str]
    payloads: list[bytes]

    def extend(self, other: RawLines) -> None:
        """Add `other`'s lines after these."""
        self.streams.extend(other.streams)
        self.payloads.extend(other.payloads)


class FrameDecoder:
    """Splits the engine's log stream into lines: multiplexed frames (no TTY) or raw bytes (TTY).

    It works a chunk at a time and column-wise, creating no object per line that the garbage
    collector tracks: in a flood such objects, alive across a chunk, would make it run its full
    collections (tens of milliseconds each, on the UI's event loop) several times a second.
    """

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self._buffer = b""
        self._partial: dict[str, bytes] = {}

    def feed(self, chunk: bytes) -> RawLines:
        """Complete lines found so far."""
        if self.tty:
            return self._lines("stdout", chunk)
        data = self._buffer + chunk if self._buffer else chunk
        self._buffer = b""
        if not self._partial:
            whole = _whole_line_frames(data)
            if whole is not None:
                out, rest = whole
                if rest:
                    out.extend(self._frames(rest))
                return out
        return self._frames(data)

    def _frames(self, data: bytes) -> RawLines:
        """The lines in `data`, frame by frame; an incomplete last frame waits for the next chunk."""
        out = RawLines([], [])
        partial = self._partial
        unpack = _HEADER.unpack_from
        pos, end = 0, len(data)
        while end - pos >= 8:
            stream, size = unpack(data, pos)
            if end - pos - 8 < size:
                break
            payload = data[pos + 8 : pos + 8 + size]
            pos += 8 + size
            name = _STREAMS.get(stream, "stdout")
            if partial and name in partial:
                payload = partial.pop(name) + payload
            # The usual frame is exactly one whole line: no split needed.
            if payload.endswith(b"\n") and payload.find(b"\n") == size - 1 == len(payload) - 1:
                out.streams.append(name)
                out.payloads.append(payload[:-1])
            else:
                out.extend(self._lines(name, payload))
        self._buffer = data[pos:]
        return out

    def _lines(self, stream: str, payload: bytes) -> RawLines:
        data = self._partial.pop(stream, b"") + payload
        *complete, rest = data.split(b"\n")
        if rest:
            self._partial[stream] = rest
        return RawLines([stream] * len(complete), complete)

    def flush(self) -> RawLines:
        """Lines left without a final newline when the stream ends."""
        left = [(stream, rest) for stream, rest in self._partial.items() if rest]
        self._partial.clear()
        return RawLines([stream for stream, _ in left], [rest for _, rest in left])


_KIND = itemgetter(slice(None, 1))
_SIZE = itemgetter(slice(4, 8))
_BIG_ENDIAN = partial(int.from_bytes, byteorder="big")
_PAYLOAD = itemgetter(slice(8, None))
_YEAR = itemgetter(slice(None, 4))
_FIRST, _SECOND, _THIRD = itemgetter(0), itemgetter(1), itemgetter(2)


def _whole_line_frames(data: bytes) -> tuple[RawLines, bytes] | None:
    """The lines of `data` (which starts at a frame) if every frame up to its last newline is one whole line.

    That is the usual stream, and it is checked with a few operations on the whole chunk instead of
    a step of Python per frame: split at the newlines, each piece must be a header and the payload
    its size says. Returns the lines and what follows the last newline (the next frame's start), or
    None when the chunk is anything else (a long line split over frames, a line without a newline
    yet, a newline in a header), which `FrameDecoder._frames` then takes frame by frame.
    """
    pieces = data.split(b"\n")
    rest = pieces.pop()
    count = len(pieces)
    if not count or min(map(len, pieces)) < 8:
        return None  # a piece shorter than a header: a newline inside one
    # A whole-line frame's payload is its piece after the header, plus the newline split off.
    sizes = map(_BIG_ENDIAN, map(_SIZE, pieces))
    if set(map(sub, map(len, pieces), sizes)) != {7}:
        return None
    kinds = b"".join(map(_KIND, pieces))
    if kinds == b"\x01" * count:
        streams = ["stdout"] * count
    else:
        streams = list(map(_STREAMS.get, kinds, repeat("stdout")))
    return RawLines(streams, list(map(_PAYLOAD, pieces))), rest


@dataclass
class LogRequest:
    """What to read: `since` (a duration like `10m`, or a stamp) and `tail` as `docker logs` takes them."""

    follow: bool = False
    since: str | None = None
    tail: int | None = None
    timestamps: bool = False
    # Keep following when the container stops, until it starts again (the TUI's log view);
    # otherwise following ends with the container, as `docker logs -f` does.
    follow_restarts: bool = False


class ResumePoint:
    """The last stamp delivered and how many delivered lines carried it."""

    def __init__(self) -> None:
        self.stamp: str | None = None
        self.count = 0
        self._skip_until: tuple[int, int] | None = None
        self._skip_left = 0

    def seen(self, stamp: str) -> None:
        """Note a delivered line's stamp."""
        if stamp == self.stamp:
            self.count += 1
        else:
            self.stamp, self.count = stamp, 1

    def arm(self) -> None:
        """Before reading again `since` the stamp: drop what was already delivered."""
        if self.stamp is not None:
            self._skip_until = timestamp_key(self.stamp)
            self._skip_left = self.count

    @property
    def armed(self) -> bool:
        """True while lines of a re-read may still be ones delivered before."""
        return self._skip_until is not None

    def already_delivered(self, stamp: str) -> bool:
        """True for lines of the re-read that were delivered before the break."""
        if self._skip_until is None:
            return False
        key = timestamp_key(stamp)
        if key < self._skip_until:
            return True
        if key == self._skip_until and self._skip_left > 0:
            self._skip_left -= 1
            return True
        self._skip_until = None
        return False


def since_param(since: str, now: float) -> str:
    """`since` for the API from `10m` (relative), an RFC 3339 stamp, or epoch seconds."""
    if since[:1].isdigit() and since.replace(".", "", 1).isdigit():
        return since
    if "T" in since:
        return since_value(since)
    try:
        return f"{now - parse_duration(since):.9f}"
    except Invalid:
        raise ValueError(since) from None  # the caller says what `since` may be: a time too


StreamOpener = Callable[[dict[str, str | int]], Awaitable[AsyncIterator[bytes]]]


async def follow_logs(
    http: EngineHttp,
    container: str,
    request: LogRequest,
    *,
    tty: bool,
    is_running: Callable[[], Awaitable[bool]],
    now: Callable[[], float],
) -> AsyncIterator[list[LogLine]]:
    """Batches of log lines of `container`; when following, survives broken streams and restarts.

    `is_running` tells, once the engine answers again, whether to go on following or to read
    what is left and stop, as `docker logs -f` stops when the container does.
    """
    resume = ResumePoint()
    first = True
    first_since = since_param(request.since, now()) if request.since else None
    started = now()
    while True:
        params: dict[str, str | int] = {"stdout": 1, "stderr": 1, "timestamps": 1}
        if request.follow:
            params["follow"] = 1
        if first:
            if first_since:
                params["since"] = first_since
            if request.tail is not None:
                params["tail"] = request.tail
        elif resume.stamp is not None:
            params["since"] = since_value(resume.stamp)
            resume.arm()
        elif first_since or request.tail is not None:
            # Nothing delivered yet: do not widen what was asked for on the re-read.
            params["since"] = first_since or f"{started:.9f}"
        try:
            async with http.request(
                "GET", f"/containers/{container}/logs", "reading logs", params=params, stream=True
            ) as resp:
                decoder = FrameDecoder(tty)
                async for chunk in resp.content.iter_any():
                    for batch in _batches(decoder.feed(chunk), resume, request.timestamps):
                        yield batch
                for batch in _batches(decoder.flush(), resume, request.timestamps):
                    yield batch
        except Unreachable as exc:
            if not request.follow:
                raise
            yield [LogLine(f"{exc.message} Reconnecting…", "system")]
            await _wait_until(_answers(is_running))
            first = False
            continue
        if not request.follow:
            return
        # The stream ended: the container stopped, or the engine went down. Ask which.
        try:
            running = await is_running()
        except Unreachable:
            await _wait_until(_answers(is_running))
            running = await is_running()
        first = False
        if not running and request.follow_restarts:
            yield [LogLine("The container stopped; waiting for it to start again…", "system")]
            await _wait_until(is_running)
        elif not running:
            # One last read since the last line delivered catches anything written before it stopped.
            request = LogRequest(False, request.since, request.tail, request.timestamps)


def _answers(probe: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    """A check that passes as soon as `probe` answers at all."""

    async def check() -> bool:
        await probe()
        return True

    return check


async def _wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    attempt = 0
    while True:
        await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
        attempt += 1
        try:
            if await check():
                return
        except BerthError:
            continue


def _batches(raw: RawLines, resume: ResumePoint, timestamps: bool) -> Iterator[list[LogLine]]:
    """`raw` as batches of at most `BATCH_LINES` lines, each made only when the consumer asks for it.

    A big read (a finished log arrives 256 KiB at a time) then never costs one long step of the
    event loop, and few lines are alive at once (see `FrameDecoder`).
    """
    streams, payloads = raw
    for start in range(0, len(payloads), BATCH_LINES):
        stop = start + BATCH_LINES
        batch = _lines(RawLines(streams[start:stop], payloads[start:stop]), resume, timestamps)
        if batch:
            yield batch


def _lines(raw: RawLines, resume: ResumePoint, timestamps: bool) -> list[LogLine]:
    # The hot path of a flood, by the chunk: one decode, and the per-line work done in C (split,
    # partition, the tuples) when every line has a stamp and nothing needs a closer look. What is
    # made per line besides the LogLine is plain tuples of strings, which the collector drops.
    streams, payloads = raw
    if not payloads:
        return []
    whole = b"\n".join(payloads).decode("utf-8", "replace")  # no line holds a newline of its own
    texts = whole.split("\n")
    parts = list(map(str.partition, texts, repeat(" ")))
    stamps = list(map(_FIRST, parts))
    if (
        resume.armed
        or "\r" in whole
        or "" in map(_SECOND, parts)
        or not all(map(str.isdigit, map(_YEAR, stamps)))
    ):
        return _lines_one_by_one(zip(streams, texts, strict=True), resume, timestamps)
    last = stamps[-1]
    first = len(stamps) - 1
    while first and stamps[first - 1] == last:
        first -= 1
    count = len(stamps) - first
    if not first and last == resume.stamp:
        count += resume.count
    resume.stamp, resume.count = last, count
    shown = stamps if timestamps else repeat(None)
    return list(map(LogLine._make, zip(map(_THIRD, parts), streams, shown, strict=False)))


def _lines_one_by_one(
    lines: Iterable[tuple[str, str]], resume: ResumePoint, timestamps: bool
) -> list[LogLine]:
    # Lines without a stamp, carriage returns, or a re-read that may repeat delivered lines.
    out: list[LogLine] = []
    append = out.append
    last, count = resume.stamp, resume.count
    for stream, text in lines:
        stamp, sep, rest = text.partition(" ")
        if not sep or not stamp[:4].isdigit():
            append(LogLine(text.rstrip("\r"), stream))
            continue
        if resume.armed and resume.already_delivered(stamp):
            continue
        if stamp == last:
            count += 1
        else:
            last, count = stamp, 1
        if rest.endswith("\r"):
            rest = rest[:-1]
        append(LogLine(rest, stream, stamp if timestamps else None))
    resume.stamp, resume.count = last, count
    return out
