"""One host's engine as a pane reads it: reach it, follow it, lose it, retry, come back.

A `HostFeed` keeps the connection state of one host for one kind of engine (its backend once
reached, why it cannot be read now, how many updates came) and hands each update to its view.
A `FeedSource` says how to reach that kind of engine and how to follow it: a stream of events
(Docker) or a list read again every few seconds (`PollSource`, LXD). Every engine pane (and the
views to come: volumes, networks, events, stacks) is a view over feeds of this one shape.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from backends.errors import BerthError
from backends.hosts import HostSession

CONNECTING = "Connecting…"
"""What a feed says until its first update: nothing has been read yet, not even an empty list."""
RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0)
"""Seconds before trying a lost engine again, one after the other (then the last, for ever); a
change of the host's session (a reconnect, a trusted key) or a wake tries at once."""
WANTED_CHECK = 1.0
"""Seconds between looks at whether a hidden view wants its feed's data yet."""


class Backend(Protocol):
    """What a feed needs of an engine's backend: a way to let its connections go."""

    async def close(self) -> None:
        """Close the backend's connections."""


B = TypeVar("B", bound=Backend)
U = TypeVar("U")


@dataclass(frozen=True)
class Lost:
    """Yielded by a source's follow when the engine stopped answering (the follow goes on)."""

    why: str


class FeedSource(ABC, Generic[B, U]):
    """How a feed reaches one kind of engine and follows it (updates of type U)."""

    engine: str
    """The engine's name in sentences ("No Docker on web-1.")."""

    @abstractmethod
    async def connect(self, session: HostSession) -> B:
        """The engine's backend on the session's host; raises BerthError when it cannot be had."""

    @abstractmethod
    def follow(self, feed: HostFeed[B, U], backend: B) -> AsyncIterator[U | Lost]:
        """The engine's updates as they come, `Lost` when it stops answering; may raise BerthError
        (the feed then says so and follows again after a pause)."""


class PollSource(FeedSource[B, U]):
    """A source whose engine is read again every `every` seconds (and at once when the feed is
    woken), only while the view wants it: the next read is scheduled after the last one ended, so
    a slow host never piles reads up."""

    every: float = 5.0

    @abstractmethod
    async def read(self, backend: B) -> U:
        """One whole read of what the view shows."""

    async def follow(self, feed: HostFeed[B, U], backend: B) -> AsyncIterator[U | Lost]:
        """A read, a pause, and again."""
        while True:
            yield await self.read(backend)
            await feed.rest(self.every)
            await feed.until_wanted()


UpdateListener = Callable[["HostFeed[B, U]", U], None]
StateListener = Callable[["HostFeed[B, U]"], None]


class HostFeed(Generic[B, U]):
    """One host's engine for one view: its backend once reached, why it cannot be read now, and
    how many updates came; `run()` keeps it current for ever.

    `on_update(feed, update)` gets every update; `on_state(feed)` is told whenever `offline`
    reads differently (an error, its end, the first update). `wanted()` says whether the view
    wants data now: until it does (or `wake()` is called) the feed sends its engine nothing.
    """

    def __init__(
        self,
        session: HostSession,
        source: FeedSource[B, U],
        *,
        on_update: UpdateListener[B, U],
        on_state: StateListener[B, U],
        wanted: Callable[[], bool] = lambda: True,
    ) -> None:
        self.host = session.host
        self.session = session
        self.source = source
        self.backend: B | None = None
        self.error = ""
        """Why the engine cannot be read now ("" while it can, and before the first try)."""
        self.updates = 0
        self.on_update = on_update
        self.on_state = on_state
        self.wanted = wanted
        self._wake = asyncio.Event()

    @property
    def offline(self) -> str:
        """Why the view's rows of this host are not current: the error, "Connecting…" before the
        first update, "" once they are."""
        return self.error or ("" if self.updates else CONNECTING)

    @property
    def why_unusable(self) -> str:
        """What to say when a verb needs the backend and there is none."""
        return self.offline or f"No {self.source.engine} on {self.host.name}."

    async def run(self) -> None:
        """Reach the engine, then follow it; a failure is said and tried again after a pause
        that grows (`RETRY_DELAYS`), cut short by a session change or a wake."""
        attempt = 0
        while True:
            await self.until_wanted()
            version = self.session.version
            try:
                if self.backend is None:
                    self.backend = await self.source.connect(self.session)
                    attempt = 0
                async for item in self.source.follow(self, self.backend):
                    if isinstance(item, Lost):
                        self._lost(item.why)
                    else:
                        attempt = 0
                        self._deliver(item)
            except BerthError as exc:
                self._set_error(str(exc))
            await self.rest(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)], version)
            attempt += 1

    def wake(self) -> None:
        """Read again at once (after an action), even while the view is hidden."""
        self._wake.set()

    async def until_wanted(self) -> None:
        """Return once the view wants data or the feed was woken: a hidden view costs nothing."""
        while not self._wake.is_set() and not self.wanted():
            await asyncio.sleep(WANTED_CHECK)
        self._wake.clear()

    async def rest(self, seconds: float, version: int | None = None) -> None:
        """Wait `seconds`, or less: until a wake, or until the session changes after `version`."""
        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(self._wake.wait())]
        if version is not None:
            waits.append(asyncio.ensure_future(self.session.changed(version)))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def close(self) -> None:
        """Let the backend's connections go (a new `run()` would reach the engine again)."""
        backend, self.backend = self.backend, None
        if backend is not None:
            await backend.close()

    def _deliver(self, update: U) -> None:
        before = self.offline
        self.updates += 1
        self.error = ""
        if self.offline != before:
            self.on_state(self)
        self.on_update(self, update)

    def _lost(self, why: str) -> None:
        """The engine stopped answering: while the host's session is down, that is the reason."""
        session = self.session
        if not session.online:
            why = f"{self.host.name} is {session.state}" + (f": {session.error}" if session.error else ".")
        self._set_error(why)

    def _set_error(self, why: str) -> None:
        if why != self.error:
            self.error = why
            self.on_state(self)
