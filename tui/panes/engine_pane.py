"""A pane over one kind of engine on one host, or on every host at once.

Each host has a `HostFeed` (tui/models/host_feed.py) that reaches its engine, follows it and
retries when it is lost; this base draws what those feeds say about their connection. On one
host's view its error (or "Connecting…") stands where its rows would be; in the all-hosts view
rows are keyed `host/id`, a HOST column says where each lives, and a host that cannot be read
has a row saying why. The verbs act on each target through its own host's backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from rich.text import Text

from backends.config import Config, HostConfig
from backends.hosts import Sessions
from tui.acting import writable
from tui.models.host_feed import Backend, FeedSource, HostFeed
from tui.panes.table_pane import TablePane
from tui.widgets.table_model import Row

B = TypeVar("B", bound=Backend)
U = TypeVar("U")

LIVE = "live"
"""The worker group of a pane's long-lived readers (feeds, samplers), cancelled on unmount."""
ERROR_KEY = "!"
"""The id part of the key of a host's error row in the all-hosts view (`web-1/!`)."""


class EnginePane(TablePane, Generic[B, U]):
    """A table pane over `HostFeed`s of one engine, one per host in `hosts` (`home` among them).
    A subclass takes each update (`apply_update`), draws the rows (`redraw`), says how a host
    that cannot be read reads (`error_row`) and what an empty table means (`empty_text`)."""

    def __init__(
        self,
        source: FeedSource[B, U],
        hosts: Sequence[HostConfig],
        home: HostConfig,
        config: Config,
        sessions: Sessions,
        *,
        all_hosts: bool,
        id: str,
        classes: str,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.source = source
        self.hosts = list(hosts)
        self.host = home
        """The host whose rows are on show (one of `hosts`), where a verb that makes something acts."""
        self.config = config
        self.sessions = sessions
        self.all_hosts = all_hosts
        self.feeds: dict[str, HostFeed[B, U]] = {}
        """Each host's feed by host name, from mount on."""

    @property
    def home(self) -> HostFeed[B, U]:
        """The feed of `host`."""
        return self.feeds.get(self.host.name) or next(iter(self.feeds.values()))

    @property
    def offline(self) -> str:
        """Why `host`'s rows are not current ("" when they are)."""
        return self.home.offline if self.feeds else ""

    @property
    def updates(self) -> int:
        """Updates that came from the engines so far, every host's."""
        return sum(feed.updates for feed in self.feeds.values())

    def on_mount(self) -> None:
        """A feed per host, each reaching its engine on its own (a slow host holds no other up)."""
        for host in self.hosts:
            feed = HostFeed(
                self.sessions.get(host),
                self.source,
                on_update=self.apply_update,
                on_state=self._feed_state,
                wanted=self.wants_data,
            )
            self.feeds[host.name] = feed
            self.run_worker(feed.run(), group=LIVE, exit_on_error=False)

    async def on_unmount(self) -> None:
        """Stop reading, and close the connections to the engines."""
        self.workers.cancel_group(self, LIVE)
        await asyncio.gather(*(feed.close() for feed in self.feeds.values()), return_exceptions=True)

    # What a subclass draws ---------------------------------------------------------------------

    def apply_update(self, feed: HostFeed[B, U], update: U) -> None:
        """Take one update of `feed`'s host (and draw it)."""
        raise NotImplementedError

    def redraw(self) -> None:
        """Draw every host's rows, and (all-hosts view) `error_rows()`."""
        raise NotImplementedError

    def empty_text(self, where: str) -> str:
        """What the table says with no rows, once read (`where`: a host's name, or "any host")."""
        raise NotImplementedError

    def error_row(self, host: str, error: str) -> Row:
        """The all-hosts view's row for `host`, which cannot be read."""
        raise NotImplementedError

    def wants_data(self) -> bool:
        """Whether the feeds may read now (a pane that polls reads only while on show)."""
        return True

    # Connection state --------------------------------------------------------------------------

    def key(self, host: str, resource_id: str) -> str:
        """The row key of a resource of `host`."""
        return f"{host}/{resource_id}" if self.all_hosts else resource_id

    def error_rows(self) -> dict[str, Row]:
        """In the all-hosts view, a row for each host that cannot be read (none otherwise)."""
        if not self.all_hosts:
            return {}
        return {
            self.key(name, ERROR_KEY): self.error_row(name, feed.error)
            for name, feed in self.feeds.items()
            if feed.error
        }

    def error_feed(self, key: str | None) -> HostFeed[B, U] | None:
        """The feed whose error row is `key`, while it has an error."""
        host, _, rest = (key or "").rpartition("/")
        feed = self.feeds.get(host) if self.all_hosts and rest == ERROR_KEY else None
        return feed if feed is not None and feed.error else None

    def _feed_state(self, feed: HostFeed[B, U]) -> None:
        """`feed.offline` reads differently: the all-hosts view redraws (its error row); one
        host's view says it where the rows would be."""
        if self.all_hosts:
            if not feed.offline:
                self.table.empty_message = self.empty_text("any host")
            self.redraw()
            return
        self.set_class(bool(feed.error), "-offline")
        self.table.empty_message = feed.offline or self.empty_text(feed.host.name)
        self.border_subtitle = Text(feed.error) if feed.error else None  # an engine's words, not markup
        self.redraw()

    def refresh_now(self) -> None:
        """Read every host again at once (after an action)."""
        for feed in self.feeds.values():
            feed.wake()

    # Guards ------------------------------------------------------------------------------------

    def acting_hosts(self) -> list[HostConfig]:
        """The hosts the verbs act on (for read-only mode)."""
        return list(self.hosts)

    def writable(self, feed: HostFeed[B, U]) -> B | None:
        """The backend to act through on `feed`'s host; None (and a notification saying why)
        when acting is not allowed there."""
        return writable(self, self.config, feed.host, feed.backend, feed.why_unusable)

    def writable_all(self, feeds: Iterable[HostFeed[B, U]]) -> dict[str, B] | None:
        """The backend of each of `feeds` by host name; None (and a notification) if one of them
        may not be acted on."""
        backends: dict[str, B] = {}
        for feed in {id(f): f for f in feeds}.values():
            backend = self.writable(feed)
            if backend is None:
                return None
            backends[feed.host.name] = backend
        return backends
