"""A small HTTP/1.1 client over a unix socket: what berth needs to talk to an engine's API.

Written for the engine sockets instead of loading aiohttp on the console's first screen (its
client builds SSL contexts at import, ~100 ms). It speaks only what the Engine API answers with:
keep-alive connections, Content-Length, chunked and read-until-close bodies, chunked uploads.
Everything read from the socket is bounded (a status line, a header line, their count, a chunk
size line, a body read whole): a broken or hostile answer is one `ProtocolError`, never a hang
on an endless line or memory without end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

MAX_LINE = 64 * 1024
"""The longest status line or header line accepted."""
MAX_HEADERS = 100
MAX_CHUNK_LINE = 4096
"""The longest chunk size line (hex digits and any extension) accepted."""
MAX_BODY = 256 * 1024 * 1024
"""The largest body `Response.read()` gathers whole (a streamed body is read in pieces instead)."""
MAX_BODY_LINE = 16 * 1024 * 1024
"""The longest line of a body read line by line (an event of the Engine API is a few hundred bytes)."""
READ_SIZE = 1 << 20
"""How much one read from the socket may take: a log flood arrives in big pieces."""
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

Body = bytes | str | AsyncIterable[bytes] | None
"""What a request sends: nothing, bytes or text (with a Content-Length), or pieces (chunked)."""


class ProtocolError(Exception):
    """The other end broke HTTP/1.1: a malformed or oversized answer, or one cut short."""


class NoAnswer(ProtocolError):
    """The connection closed before a byte of an answer came (an idle keep-alive one went stale)."""


class Connection:
    """One connection to the socket and the bytes read from it that no answer has used yet."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()

    def usable(self) -> bool:
        """Whether an idle connection may carry another request (the other end has not closed it)."""
        return not self.reader.at_eof() and not self.writer.is_closing() and not self.buffer

    async def fill(self) -> bool:
        """Read what the socket has into `buffer`; False at the end of the stream."""
        data = await self.reader.read(READ_SIZE)
        self.buffer += data
        return bool(data)

    async def line(self, what: str, limit: int) -> bytes:
        """The next line without its line end; `what` names it in the error when it is too long."""
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                if end > limit:
                    break
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buffer) > limit:
                break
            start = len(self.buffer)
            if not await self.fill():
                raise ProtocolError(f"the answer ended in {what}")
        raise ProtocolError(f"{what} is longer than {limit:,} bytes")

    def close(self) -> None:
        """Close the socket (the other end sees the connection end)."""
        self.writer.close()


class UnixPool:
    """Keep-alive connections to one unix socket, at most `limit` in use at once."""

    def __init__(self, path: str, limit: int) -> None:
        self.path = path
        self.loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[Connection] = []
        self._closed = False

    async def acquire(self) -> tuple[Connection, bool]:
        """A connection, waiting for a free slot; and whether it carried a request before."""
        await self._slots.acquire()
        try:
            while self._idle:
                connection = self._idle.pop()
                if connection.usable():
                    return connection, True
                connection.close()
            reader, writer = await asyncio.open_unix_connection(self.path, limit=READ_SIZE)
            return Connection(reader, writer), False
        except BaseException:
            self._slots.release()
            raise

    def release(self, connection: Connection, keep: bool) -> None:
        """Give a connection back: kept for the next request, or closed."""
        if keep and not self._closed:
            self._idle.append(connection)
        else:
            connection.close()
        self._slots.release()

    def close(self) -> None:
        """Close the idle connections; those in use close when they are given back."""
        self._closed = True
        for connection in self._idle:
            connection.close()
        self._idle.clear()


class Content:
    """A response body as it arrives, read in pieces, by lines or whole (through `Response`)."""

    def __init__(self, connection: Connection, framing: str, length: int) -> None:
        self._connection = connection
        self._framing = framing  # "length", "chunked", "close" or "none"
        self._left = length  # of the body ("length") or of the chunk being read ("chunked")
        self._after_chunk = False  # a chunk's data was read: its CRLF comes next
        self._trailers = 0
        self.done = framing == "none" or (framing == "length" and length == 0)

    async def readany(self) -> bytes:
        """The next piece of the body, as much as has arrived; b"" at its end."""
        connection = self._connection
        while not self.done:
            if self._framing == "chunked":
                piece = self._dechunk()
                if piece:
                    return piece
                if self.done:
                    break
                if not await connection.fill():
                    raise ProtocolError("the answer ended inside a chunked body")
                continue
            if not connection.buffer and not await connection.fill():
                if self._framing == "close":
                    self.done = True
                    break
                raise ProtocolError(f"the answer ended {self._left:,} bytes before its Content-Length")
            buffer = connection.buffer
            if self._framing == "close":
                piece = bytes(buffer)
                buffer.clear()
                return piece
            take = min(self._left, len(buffer))
            piece = bytes(buffer[:take])
            del buffer[:take]
            self._left -= take
            self.done = self._left == 0
            return piece
        return b""

    def _dechunk(self) -> bytes:
        """The chunk data that is in the buffer, joined; the framing around it is consumed.

        A log flood comes one line a chunk: a chunk that arrived whole is taken in one step."""
        buffer = self._connection.buffer
        pieces: list[bytearray] = []
        at, end = 0, len(buffer)
        while at < end:
            if self._left:
                take = min(self._left, end - at)
                pieces.append(buffer[at : at + take])
                at += take
                self._left -= take
                self._after_chunk = self._left == 0
                continue
            eol = buffer.find(b"\n", at, at + MAX_CHUNK_LINE + 1)
            if eol < 0:
                if end - at > MAX_CHUNK_LINE:
                    raise ProtocolError(f"a chunk size line is longer than {MAX_CHUNK_LINE:,} bytes")
                break
            line = buffer[at:eol]
            at = eol + 1
            if self._after_chunk:
                if line.rstrip(b"\r"):
                    raise ProtocolError("a chunk's data runs past its size")
                self._after_chunk = False
            elif self._trailers:
                if not line.rstrip(b"\r"):
                    self.done = True
                    break
                self._trailers += 1
                if self._trailers > MAX_HEADERS:
                    raise ProtocolError(f"more than {MAX_HEADERS} trailer lines")
            elif size := _chunk_size(line):
                stop = at + size
                if buffer[stop : stop + 2] == b"\r\n":
                    pieces.append(buffer[at:stop])
                    at = stop + 2
                else:
                    self._left = size
            else:
                self._trailers = 1
        del buffer[:at]
        return b"".join(pieces)

    def iter_any(self) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive."""
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        while piece := await self.readany():
            yield piece

    async def iter_chunked(self, size: int) -> AsyncIterator[bytes]:
        """The body in pieces of at most `size` bytes."""
        async for piece in self._pieces():
            for at in range(0, len(piece), size):
                yield piece[at : at + size]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The body's lines, each with its b"\\n" (the last may lack it)."""
        pending = b""
        async for piece in self._pieces():
            pending += piece
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line + b"\n"
            if len(pending) > MAX_BODY_LINE:
                raise ProtocolError(f"a line of the body is longer than {MAX_BODY_LINE:,} bytes")
        if pending:
            yield pending


def _chunk_size(line: bytearray) -> int:
    """The size a chunk size line gives: hex digits, perhaps then an extension after ";"."""
    try:
        size = int(line, 16)  # the common line, at C speed (it strips the line end itself)
    except ValueError:
        digits = bytes(line).split(b";", 1)[0].strip()
        if not digits or digits.strip(b"0123456789abcdefABCDEF"):
            raise ProtocolError(f"a malformed chunk size line {bytes(line[:40])!r}") from None
        size = int(digits, 16)
    if size < 0:
        raise ProtocolError(f"a malformed chunk size line {bytes(line[:40])!r}")
    return size


class Response:
    """An answer: its status, reason and headers (names in lower case), and its body."""

    def __init__(
        self, status: int, reason: str, headers: Mapping[str, str], content: Content, keep_alive: bool
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self._keep_alive = keep_alive

    @property
    def reusable(self) -> bool:
        """Whether the connection may carry the next request (the body was read to its end)."""
        return self._keep_alive and self.content.done

    async def read(self) -> bytes:
        """The whole body (at most `MAX_BODY` bytes)."""
        pieces: list[bytes] = []
        size = 0
        while piece := await self.content.readany():
            size += len(piece)
            if size > MAX_BODY:
                raise ProtocolError(f"the answer is larger than {MAX_BODY:,} bytes")
            pieces.append(piece)
        return b"".join(pieces)

    async def text(self) -> str:
        """The whole body as text (UTF-8; bytes that are not become U+FFFD)."""
        return (await self.read()).decode("utf-8", "replace")

    async def json(self) -> Any:
        """The whole body decoded from JSON; None when it is empty."""
        raw = await self.read()
        return json.loads(raw) if raw.strip() else None


async def _send(
    connection: Connection, method: str, target: str, headers: Mapping[str, str], body: Body
) -> None:
    """Write one request; an iterable body goes chunked, a piece at a time as the socket drains."""
    lines = [f"{method} {target} HTTP/1.1", "Host: engine"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if any("\r" in line or "\n" in line for line in lines):
        raise ValueError(f"a line break in the request head: {lines!r}")
    payload = body.encode() if isinstance(body, str) else body
    if isinstance(payload, bytes):
        lines.append(f"Content-Length: {len(payload)}")
    elif payload is None and method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    elif payload is not None:
        lines.append("Transfer-Encoding: chunked")
    writer = connection.writer
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    if isinstance(payload, bytes):
        writer.write(payload)
    elif payload is not None:
        async for piece in payload:
            if piece:
                writer.writelines([b"%x\r\n" % len(piece), piece, b"\r\n"])
                await writer.drain()
        writer.write(b"0\r\n\r\n")
    await writer.drain()


async def _receive(connection: Connection, method: str) -> Response:
    """Read an answer's head (informational 1xx answers are skipped); its body is read later."""
    if not connection.buffer and not await connection.fill():
        raise NoAnswer("the connection closed before an answer")
    while True:
        line = await connection.line("the status line", MAX_LINE)
        version, _, rest = line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ProtocolError(f"a malformed status line {line[:40]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            header = await connection.line("a header line", MAX_LINE)
            if not header:
                break
            name, colon, value = header.partition(b":")
            if not colon or not name or name.strip() != name:
                raise ProtocolError(f"a malformed header line {header[:40]!r}")
            key, text = name.decode("latin-1").lower(), value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        else:
            raise ProtocolError(f"more than {MAX_HEADERS} header lines")
        if 100 <= status < 200 and status != 101:
            continue
        break
    framing, length = "close", 0
    if method == "HEAD" or status in (101, 204, 304):
        framing = "none"
    elif headers.get("transfer-encoding", "").lower().rsplit(",", 1)[-1].strip() == "chunked":
        framing = "chunked"
    elif "content-length" in headers:
        declared = headers["content-length"]
        if not declared.isdigit() or len(declared) > 18:
            raise ProtocolError(f"a malformed Content-Length {declared[:40]!r}")
        framing, length = "length", int(declared)
    keep_alive = (
        version == b"HTTP/1.1" and framing != "close" and "close" not in headers.get("connection", "").lower()
    )
    content = Content(connection, framing, length)
    return Response(status, reason.decode("latin-1"), headers, content, keep_alive)


@asynccontextmanager
async def exchange(
    pool: UnixPool,
    method: str,
    target: str,
    *,
    headers: Mapping[str, str],
    body: Body,
    connect_timeout: float,
) -> AsyncIterator[Response]:
    """Send one request on a pooled connection and yield its answer once its head arrived.

    `connect_timeout` bounds waiting for a free slot and connecting. A request that finds an idle
    connection gone stale is sent once more on a new one when it is safe to repeat.
    """
    repeatable = method in IDEMPOTENT and (body is None or isinstance(body, (bytes, str)))
    while True:
        async with asyncio.timeout(connect_timeout):
            connection, reused = await pool.acquire()
        keep = False
        try:
            try:
                await _send(connection, method, target, headers, body)
                response = await _receive(connection, method)
            except (NoAnswer, ConnectionResetError, BrokenPipeError):
                if reused and repeatable:
                    continue
                raise
            yield response
            keep = response.reusable
            return
        finally:
            pool.release(connection, keep)
