"""A view of one kind of resource (images, volumes, networks) on the hosts of an
engine pane: read from every reachable host when shown, rows keyed as the pane keys them.

A subclass names its columns and its noun, says how to read the resources from a backend and how
one reads as a row, and adds its verbs; targets, the host of a row and running a call off the UI
are here. It draws no connection state of its own: that is the pane's (`EnginePane`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from textual.app import ComposeResult

from backends.errors import BerthError
from backends.streams import LogLine
from tui.acting import permitted, run_action
from tui.models.host_feed import Backend, HostFeed
from tui.panes.container_rows import HOST_COLUMN
from tui.panes.engine_pane import EnginePane
from tui.panes.table_pane import TablePane
from tui.widgets.resource_table import ResourceTable
from tui.widgets.table_model import Column, Row

B = TypeVar("B", bound=Backend)
T = TypeVar("T")


class ResourceView(TablePane, Generic[B, T]):
    """The resources of kind T on the hosts of `pane`, as last read (`items`, by row key)."""

    COLUMNS: ClassVar[Sequence[Column]]
    NOUN: ClassVar[str]
    """What the resources are called in sentences ("images")."""

    def __init__(self, pane: EnginePane[B, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pane = pane
        self.items: dict[str, T] = {}
        """Row key -> resource, as last read."""

    def compose(self) -> ComposeResult:
        """The table (a HOST column first in the all-hosts view)."""
        pane = self.pane
        yield ResourceTable(
            (HOST_COLUMN, *self.COLUMNS) if pane.all_hosts else self.COLUMNS,
            sort_column="name",
            id=self.TABLE_ID,
            groupable=False,
            empty_message=f"No {self.NOUN} on {'any host' if pane.all_hosts else pane.host.name}.",
        )

    async def read(self, backend: B) -> dict[str, T]:
        """The resources of one host by id."""
        raise NotImplementedError

    def row(self, item: T, host: str | None) -> Row:
        """How one resource reads (with a host cell in the all-hosts view)."""
        raise NotImplementedError

    def reload(self) -> None:
        """Read the resources again (every reachable host's, at once); a host that fails is
        said in one notification, and the others' rows are shown."""
        feeds = [f for f in self.pane.feeds.values() if f.backend is not None]

        async def one(feed: HostFeed[B, Any]) -> dict[str, T]:
            assert feed.backend is not None
            found = await self.read(feed.backend)
            return {self.pane.key(feed.host.name, rid): item for rid, item in found.items()}

        async def job() -> None:
            items: dict[str, T] = {}
            failed: list[str] = []
            # Each host on its own: one that cannot answer must not empty the others' rows.
            parts = await asyncio.gather(*(one(f) for f in feeds), return_exceptions=True)
            for feed, part in zip(feeds, parts, strict=True):
                if isinstance(part, BerthError):
                    failed.append(f"{feed.host.name}: {part}")
                elif isinstance(part, BaseException):
                    raise part
                else:
                    items.update(part)
            self.items = items
            self.table.update_rows({key: self.row(item, self.host_of(key)) for key, item in items.items()})
            if failed:
                raise BerthError(" ".join(failed))

        self.run_call(self.NOUN, job)

    def action_reload(self) -> None:
        """`r`: read again now, for what changed outside berth (the view reads only when shown
        and after its own verbs)."""
        self.reload()

    def action_switch_view(self) -> None:
        """The pane's next view: `v` here is the pane's key, labelled for where it goes."""
        switch = getattr(self.pane, "action_switch_view", None)
        if callable(switch):
            switch()

    def host_of(self, key: str) -> str | None:
        """The host of row `key` in the all-hosts view (None on one host's view)."""
        return key.rpartition("/")[0] if self.pane.all_hosts else None

    def targets(self) -> list[tuple[HostFeed[B, Any], T]]:
        """(host feed, resource) of the marked rows, else of the one under the cursor."""
        found = []
        for key in self.table.selected_ids():
            feed = self.pane.feeds.get(self.host_of(key) or self.pane.host.name)
            if feed is not None and key in self.items:
                found.append((feed, self.items[key]))
        return found

    def cursor_target(self) -> tuple[HostFeed[B, Any], T] | None:
        """(host feed, resource) under the cursor, when its host is connected."""
        key = self.table.cursor_id() or ""
        feed = self.pane.feeds.get(self.host_of(key) or self.pane.host.name)
        if key not in self.items or feed is None or feed.backend is None:
            return None
        return feed, self.items[key]

    def acting_backend(self) -> tuple[HostFeed[B, Any], B] | None:
        """The host a verb on the whole view (a prune) acts on: the marked rows' or the cursor
        row's, else the pane's; None, with a notification saying why, when it may not change."""
        chosen = self.targets()
        feed = chosen[0][0] if chosen else self.pane.feeds[self.pane.host.name]
        backend = self.pane.writable(feed)
        return None if backend is None else (feed, backend)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No verb that changes state in read-only mode."""
        return permitted(self, action, parameters)

    def run_call(self, label: str, job: Callable[[], Awaitable[object]]) -> None:
        """Run an engine call off the UI; a failure becomes one notification."""
        run_action(self, label, job)

    def show_document(self, title: str, source_name: str, read: Callable[[], Awaitable[object]]) -> None:
        """Read a document (an inspect) off the UI and show it as JSON, searchable like a log (`i`)."""

        async def job() -> None:
            from tui.screens.logs import LogScreen  # the log view loads when a log is first opened

            document = json.dumps(await read(), indent=2, sort_keys=True)
            lines = [LogLine(text) for text in document.splitlines()]
            self.app.push_screen(LogScreen(title, lines=lines, source_name=source_name))

        self.run_call("inspect", job)

    NOUN_ONE: ClassVar[str]
    """What one resource is called in a title ("volume")."""

    def label(self, item: T) -> str:
        """How one resource is named in titles and questions."""
        raise NotImplementedError

    async def inspect_item(self, backend: B, item: T) -> object:
        """The engine's full document of one resource."""
        raise NotImplementedError

    def action_inspect(self) -> None:
        """The full inspect document of the resource under the cursor, searchable like a log."""
        chosen = self.cursor_target()
        if chosen is None:
            return
        feed, item = chosen
        backend = feed.backend
        assert backend is not None
        label = self.label(item)
        self.show_document(
            f"inspect · {self.NOUN_ONE} {label}", f"{label}-inspect", lambda: self.inspect_item(backend, item)
        )

    def on_resource_table_activated(self, event: ResourceTable.Activated) -> None:
        """Enter on a row: its inspect document."""
        event.stop()
        self.action_inspect()
