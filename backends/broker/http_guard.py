"""Timeouts and connection limits for the broker's HTTP server, which aiohttp leaves open: a
client gets `header_timeout` seconds to send a request's headers, may pause its body for at most
`body_timeout`, and is closed after `keepalive` idle seconds. A peer address may hold at most
`per_peer` connections still sending headers (or a provider handshake), and as many still sending
a body (all peers together `incomplete` of each); past that its oldest such connection is closed,
so a slow client can't use up the server's sockets and a fresh request (a health check) still
gets in. A provider socket may bring only `preauth_bytes` before it is admitted.

The guard wraps each connection's aiohttp protocol (`GuardedProtocol`), sees every byte arrive,
and learns from the app's middleware when a request's headers are in (`started`) and when it was
answered (`finished`): public API of aiohttp and asyncio only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

HEADERS, BODY, BUSY, IDLE, PREAUTH, CLOSED = "headers", "body", "busy", "idle", "preauth", "closed"
_GROUP = {HEADERS: HEADERS, PREAUTH: HEADERS, BODY: BODY}
"""The connections still sending something, counted apart: headers (and provider handshakes), bodies."""
SWEEP = 0.25
"""Seconds between two looks at every connection's deadline."""


@dataclass(frozen=True)
class HttpLimits:
    """The server's timeouts (seconds) and connection limits."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive: float = 30.0
    per_peer: int = 32
    incomplete: int = 1024
    preauth_bytes: int = 16 * 1024


@dataclass(eq=False)
class _Conn:
    transport: asyncio.BaseTransport
    peer: str
    state: str
    since: float
    last_data: float
    budget: int | None = None
    content: Any = None
    """The body stream of the request being received (`StreamReader.is_eof()` once all in)."""
    answered: bool = False
    """The handler finished while the body was still coming (aiohttp reads the rest away)."""


class ConnectionGuard:
    """Deadlines and limits over every connection of one server (see the module's docstring)."""

    def __init__(self, limits: HttpLimits | None = None) -> None:
        self.limits = limits or HttpLimits()
        self._conns: dict[asyncio.BaseTransport, _Conn] = {}
        # Connections still sending, oldest first: by group, and by (peer, group).
        self._incomplete: dict[str, dict[_Conn, None]] = {HEADERS: {}, BODY: {}}
        self._by_peer: dict[tuple[str, str], dict[_Conn, None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def protocol(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server` that guards what `inner` makes."""

        def make() -> asyncio.Protocol:
            return GuardedProtocol(self, inner())

        return make

    def start(self) -> None:
        """Begin watching deadlines (on the running loop)."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def close(self) -> None:
        """Stop watching."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    # What the app tells the guard ------------------------------------------------------------

    def started(self, request: web.BaseRequest) -> None:
        """A request's headers are in: its body (if any) is what is left to arrive."""
        conn = self._conn_of(request)
        if conn is None:
            return
        if request.content.is_eof():
            self._set(conn, BUSY)
        else:
            conn.content = request.content
            self._set(conn, BODY)

    def finished(self, request: web.BaseRequest) -> None:
        """A request was answered: the connection is idle (once its body, if any, is all in)."""
        conn = self._conn_of(request)
        if conn is None or conn.state == PREAUTH:
            return
        if request.content.is_eof():
            self._set(conn, IDLE)
        else:
            conn.content, conn.answered = request.content, True
            self._set(conn, BODY)

    def before_admission(self, request: web.BaseRequest) -> None:
        """A provider socket that is not admitted yet: it may send only `preauth_bytes`."""
        conn = self._conn_of(request)
        if conn is not None:
            conn.budget = self.limits.preauth_bytes
            self._set(conn, PREAUTH)

    def admitted(self, request: web.BaseRequest) -> None:
        """The provider socket was admitted: no byte budget, no deadline any more."""
        conn = self._conn_of(request)
        if conn is not None:
            conn.budget = None
            self._set(conn, BUSY)

    def _conn_of(self, request: web.BaseRequest) -> _Conn | None:
        conn = self._conns.get(request.transport) if request.transport is not None else None
        return None if conn is None or conn.state == CLOSED else conn

    # What the connections do -----------------------------------------------------------------

    def _made(self, transport: asyncio.BaseTransport) -> _Conn:
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
        now = time.monotonic()
        conn = _Conn(transport, peer, IDLE, now, now)
        self._conns[transport] = conn
        self._set(conn, HEADERS)
        return conn

    def _received(self, conn: _Conn, size: int) -> bool:
        """Count `size` bytes in; False when the connection was closed for them."""
        if conn.state == CLOSED:
            return False
        conn.last_data = time.monotonic()
        if conn.budget is not None:
            conn.budget -= size
            if conn.budget < 0:
                self._drop(conn)
                return False
        if conn.state == IDLE:
            self._set(conn, HEADERS)
        return True

    def _after_data(self, conn: _Conn) -> None:
        if conn.state == BODY and conn.content is not None and conn.content.is_eof():
            self._set(conn, IDLE if conn.answered else BUSY)

    def _lost(self, conn: _Conn) -> None:
        self._unwait(conn, _GROUP.get(conn.state))
        self._conns.pop(conn.transport, None)

    # Inside -----------------------------------------------------------------------------------

    def _set(self, conn: _Conn, state: str) -> None:
        was = _GROUP.get(conn.state)
        conn.state, conn.since = state, time.monotonic()
        if state != BODY:
            conn.content, conn.answered = None, False
        group = _GROUP.get(state)
        if group != was:
            self._unwait(conn, was)
            if group is not None:
                self._wait(conn, group)

    def _wait(self, conn: _Conn, group: str) -> None:
        peer = self._by_peer.setdefault((conn.peer, group), {})
        while len(peer) >= self.limits.per_peer:
            self._drop(next(iter(peer)))
        every = self._incomplete[group]
        while len(every) >= self.limits.incomplete:
            self._drop(next(iter(every)))
        peer[conn] = None
        every[conn] = None

    def _unwait(self, conn: _Conn, group: str | None) -> None:
        if group is None:
            return
        self._incomplete[group].pop(conn, None)
        peer = self._by_peer.get((conn.peer, group))
        if peer is not None:
            peer.pop(conn, None)
            if not peer:
                del self._by_peer[(conn.peer, group)]

    def _drop(self, conn: _Conn) -> None:
        """Close a connection at once (nothing more is read from it or written to it)."""
        self._unwait(conn, _GROUP.get(conn.state))
        conn.state, conn.budget = CLOSED, None
        transport = conn.transport
        if isinstance(transport, asyncio.Transport):
            transport.abort()
        else:
            transport.close()

    async def _sweep(self) -> None:
        limits = self.limits
        while True:
            await asyncio.sleep(SWEEP)
            now = time.monotonic()
            for conn in list(self._conns.values()):
                if conn.state == HEADERS and now - conn.since > limits.header_timeout:
                    self._drop(conn)
                elif conn.state == BODY:
                    self._after_data(conn)
                    if conn.state == BODY and now - conn.last_data > limits.body_timeout:
                        self._drop(conn)
                elif conn.state == IDLE and now - conn.since > limits.keepalive:
                    conn.state = CLOSED
                    conn.transport.close()


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the guard seeing what arrives first."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.conn: _Conn | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Note the connection (its header deadline starts), then let aiohttp have it."""
        self.conn = self.guard._made(transport)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """Count the bytes against the deadlines and budget, then hand them to aiohttp."""
        if self.conn is None or self.guard._received(self.conn, len(data)):
            self.inner.data_received(data)
            if self.conn is not None:
                self.guard._after_data(self.conn)

    def eof_received(self) -> bool | None:
        """Passed on to aiohttp."""
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection, then tell aiohttp."""
        if self.conn is not None:
            self.guard._lost(self.conn)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """Passed on to aiohttp (flow control)."""
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        """Passed on to aiohttp (flow control)."""
        self.inner.resume_writing()
