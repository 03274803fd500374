"""The command palette's pane commands: every verb of every pane, on each row it shows
("containers: Restart web-1", "members: Snapshots alice", "wasm: New task"), labelled by pane.

A command runs the pane's own action with the cursor on that row, so it asks, guards and
notifies exactly as the key does; verbs the pane would refuse now (read-only) are not offered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.actions import parse
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.widget import Widget

from tui.panes import PANES
from tui.panes.table_pane import TablePane
from tui.verbs import WHOLE, find
from tui.widgets.resource_table import ResourceTable

if TYPE_CHECKING:
    from tui.app import BerthApp

@dataclass(frozen=True)
class PaneCommand:
    """One palette entry: `pane: Verb target`, and how to run it."""

    pane_id: str
    node: Widget
    """The pane, or the view in it, whose verb this is."""
    binding: Binding
    row_id: str | None
    target: str

    @property
    def text(self) -> str:
        """What the palette shows and matches."""
        label = f"{self.pane_id}: {self.binding.description}"
        return f"{label} {self.target}" if self.target else label


def pane_commands(app: BerthApp) -> Iterator[PaneCommand]:
    """The verbs of every pane and of the view on show in it (the Containers pane's images): those
    acting on the whole once, row verbs once per row on show (`tui.verbs` says which is which)."""
    screen = app.main_screen
    for spec in PANES:
        pane = screen.pane_widget(spec.id)
        for node in (pane, *(view for view in pane.query(TablePane) if view.display)):
            yield from _node_commands(spec.id, node)


def _node_commands(pane_id: str, node: Widget) -> Iterator[PaneCommand]:
    tables = node.query(ResourceTable)
    table = tables.first() if tables else None
    for binding in (b for b in type(node).BINDINGS if isinstance(b, Binding) and b.id):
        _, name, params = parse(binding.action)
        if node.check_action(name, params) is False:
            continue
        verb = find(binding.id)
        if verb is not None and verb.level == WHOLE:
            yield PaneCommand(pane_id, node, binding, None, "")
        elif table is not None:
            for row_id in table.visible_ids():
                row = table.rows[row_id]
                target = str(row.cells.get("name") or row_id)
                yield PaneCommand(pane_id, node, binding, row_id, target)


def run_pane_command(app: BerthApp, command: PaneCommand) -> None:
    """Show the pane, put the cursor on the row (marks cleared, so only it is acted on), run the verb."""
    app.main_screen.action_show_pane(command.pane_id)
    node = command.node
    if command.row_id is not None:
        table = node.query_one(ResourceTable)
        table.clear_marks()
        table.move_cursor_to(command.row_id)
    node.call_later(node.run_action, command.binding.action)


class PaneCommands(Provider):
    """The palette provider for the panes' verbs."""

    async def startup(self) -> None:
        """Build the panes not shown yet (their modules load now), so their verbs are offered too."""
        from tui.app import BerthApp

        app = self.app
        if isinstance(app, BerthApp):
            for spec in PANES:
                await app.main_screen.ready_pane(spec.id, Widget)

    def _commands(self) -> list[PaneCommand]:
        from tui.app import BerthApp

        app = self.app
        return list(pane_commands(app)) if isinstance(app, BerthApp) else []

    async def search(self, query: str) -> Hits:
        """Commands whose text matches what was typed, best first."""
        matcher = self.matcher(query)
        app = self.app
        for command in self._commands():
            score = matcher.match(command.text)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(command.text),
                    lambda c=command: run_pane_command(app, c),  # type: ignore[arg-type]
                    text=command.text,
                    help=command.binding.tooltip or None,
                )

    async def discover(self) -> Hits:
        """With nothing typed: the pane-level verbs (new task, new member…)."""
        app = self.app
        for command in self._commands():
            if command.row_id is None:
                yield DiscoveryHit(
                    command.text,
                    lambda c=command: run_pane_command(app, c),  # type: ignore[arg-type]
                    help=command.binding.tooltip or None,
                )
