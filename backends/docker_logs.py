"""Container logs as an async iterator of line batches, resumed without loss or doubling.

berth always asks the engine for timestamps, remembers the last one it passed on (and how many
lines carried exactly that stamp), and after a broken stream or an engine restart asks again
`since` that instant, dropping what it already delivered. The user sees timestamps only if asked.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from backends.engine_http import EngineHttp
from backends.errors import BerthError, Unreachable
from backends.streams import LogLine

_STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}
_HEADER = struct.Struct(">BxxxL")
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


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


def since_value(stamp: str) -> str:
    """The Engine API's `since` for an RFC 3339 stamp: `SECONDS.NANOSECONDS`."""
    seconds, nanos = timestamp_key(stamp)
    return f"{seconds}.{nanos:09d}"


class FrameDecoder:
    """Splits the engine's log stream into lines: multiplexed frames (no TTY) or raw bytes (TTY)."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self._buffer = b""
        self._partial: dict[str, bytes] = {}

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        """Complete lines (stream name, bytes without the newline) found so far."""
        if self.tty:
            return self._lines("stdout", chunk)
        data = self._buffer + chunk if self._buffer else chunk
        out: list[tuple[str, bytes]] = []
        append = out.append
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
                append((name, payload[:-1]))
            else:
                out.extend(self._lines(name, payload))
        self._buffer = data[pos:]
        return out

    def _lines(self, stream: str, payload: bytes) -> list[tuple[str, bytes]]:
        data = self._partial.pop(stream, b"") + payload
        *complete, rest = data.split(b"\n")
        if rest:
            self._partial[stream] = rest
        return [(stream, line) for line in complete]

    def flush(self) -> list[tuple[str, bytes]]:
        """Lines left without a final newline when the stream ends."""
        left = [(stream, rest) for stream, rest in self._partial.items() if rest]
        self._partial.clear()
        return left


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


def parse_duration(text: str) -> float:
    """Seconds in `90s`, `10m`, `1h30m`, `2d`; `Invalid`-free: raises ValueError for the caller."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    total, number = 0.0, ""
    for char in text.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total += float(number) * units[char]
            number = ""
        else:
            raise ValueError(text)
    if number:
        raise ValueError(text)
    return total


def since_param(since: str, now: float) -> str:
    """`since` for the API from `10m` (relative), an RFC 3339 stamp, or epoch seconds."""
    if since[:1].isdigit() and since.replace(".", "", 1).isdigit():
        return since
    if "T" in since:
        return since_value(since)
    return f"{now - parse_duration(since):.9f}"


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
                    batch = _lines(decoder.feed(chunk), resume, request.timestamps)
                    if batch:
                        yield batch
                tail = _lines(decoder.flush(), resume, request.timestamps)
                if tail:
                    yield tail
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


def _lines(raw: list[tuple[str, bytes]], resume: ResumePoint, timestamps: bool) -> list[LogLine]:
    # The hot loop of a flood: plain local operations, the resume checks only when armed.
    out: list[LogLine] = []
    append = out.append
    last, count = resume.stamp, resume.count
    for stream, line in raw:
        text = line.decode("utf-8", "replace")
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
