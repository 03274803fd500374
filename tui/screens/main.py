"""The main frame: host header, the four panes as tabs, the `:` command line and the footer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, TabbedContent, TabPane

from backends.config import Config, HostConfig
from backends.hosts import Sessions
from backends.wasm.pool import TaskPool
from tui.panes import PANES
from tui.panes.containers import ContainersPane
from tui.panes.members import MembersPane
from tui.panes.providers import ProvidersPane
from tui.panes.wasm import WasmPane
from tui.verbs import bindings
from tui.widgets.command_line import CommandLine
from tui.widgets.host_header import HostHeader

if TYPE_CHECKING:
    from backends.broker.embedded import BrokerHandle


class MainScreen(Screen[None]):
    """Where berth lives: `1`-`4` and Tab/Shift+Tab move between panes."""

    BINDINGS = bindings("main")

    def __init__(
        self,
        hosts: list[HostConfig],
        config: Config,
        sessions: Sessions,
        all_hosts: bool,
        current: HostConfig,
        wasm_pool: Callable[[], Awaitable[TaskPool]],
        broker: Callable[[], Awaitable[BrokerHandle]],
    ) -> None:
        super().__init__()
        self.wasm_pool = wasm_pool
        self.broker = broker
        self.hosts = hosts
        self.all_hosts = all_hosts
        self.current = current
        self.config = config
        self.sessions = sessions

    def compose(self) -> ComposeResult:
        """Header, panes, command line, footer."""
        yield HostHeader(id="host-header")
        with TabbedContent(id="panes"):
            for spec in PANES:
                with TabPane(f"{spec.key} {spec.title}", id=spec.id):
                    if spec.id == "containers":
                        yield self._containers_pane()
                    elif spec.id == "members":
                        yield self._members_pane()
                    elif spec.id == "wasm":
                        yield WasmPane(self.current, self.wasm_pool, self.broker)
                    else:
                        yield ProvidersPane(self.current, self.config, self.sessions, self.broker)
        yield CommandLine()
        yield Footer()

    def _containers_pane(self) -> ContainersPane:
        return ContainersPane(self.hosts, self.config, self.sessions, all_hosts=self.all_hosts)

    def _members_pane(self) -> MembersPane:
        # In the all-hosts view every host's members; new ones go to the last host chosen.
        return MembersPane(
            self.current, self.config, self.sessions, all_hosts=self.hosts if self.all_hosts else ()
        )

    async def set_hosts(self, hosts: list[HostConfig], all_hosts: bool, current: HostConfig) -> None:
        """Point every built pane at `hosts` (one, or all of them in one view)."""
        self.hosts, self.all_hosts, self.current = hosts, all_hosts, current
        for old, fresh in (
            (self.query_one(ContainersPane), self._containers_pane()),
            (self.query_one(MembersPane), self._members_pane()),
        ):
            parent = old.parent
            assert isinstance(parent, Widget)
            # A fresh pane rather than a reset: the columns differ, and no state of the old host leaks.
            await old.remove()
            await parent.mount(fresh)
        self.query_one(WasmPane).host = current  # where a task's image comes from
        self.query_one(ProvidersPane).host = current  # where P starts a provider
        if self.active_pane in ("containers", "members"):
            self.pane_widget(self.active_pane).focus()

    @property
    def active_pane(self) -> str:
        """The id of the pane on show."""
        return self.query_one(TabbedContent).active

    def pane_widget(self, pane_id: str) -> Widget:
        """The widget that fills pane `pane_id`."""
        return self.query_one(f"#pane-{pane_id}")

    def action_show_pane(self, pane_id: str) -> None:
        """Bring pane `pane_id` forward and focus it."""
        self.query_one(TabbedContent).active = pane_id
        self.pane_widget(pane_id).focus()

    def action_cycle_pane(self, step: int) -> None:
        """Move `step` panes along, wrapping around."""
        ids = [p.id for p in PANES]
        self.action_show_pane(ids[(ids.index(self.active_pane) + step) % len(ids)])

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A click on a tab focuses its pane, as the keys do."""
        if event.pane.id:
            self.pane_widget(event.pane.id).focus()

    def open_command_line(self) -> None:
        """Show the `:` prompt and focus it."""
        line = self.query_one(CommandLine)
        # Shown and focused at once (not on the next refresh), so keys typed right after ":"
        # (fast typists, pasted commands) land in the prompt instead of the pane.
        line.display = True
        self.set_focus(line)

    def close_command_line(self) -> None:
        """Hide the prompt and give focus back to the pane."""
        line = self.query_one(CommandLine)
        line.value = ""
        line.display = False
        self.pane_widget(self.active_pane).focus()

    def on_command_line_dismissed(self, _event: CommandLine.Dismissed) -> None:
        """Escape on the prompt."""
        self.close_command_line()
