"""The main frame: host header, the four panes as tabs, the `:` command line and the footer.

Only the first pane is built at start; the others (and their modules, with the libraries of
their backends) load the first time they are shown or asked for (`pane_widget`), so the first
screen does not wait for panes nobody looked at yet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widget import AwaitMount, Widget
from textual.widgets import Footer, TabbedContent, TabPane

from backends.config import Config, HostConfig
from backends.hosts import Sessions
from tui.panes import PANES
from tui.panes.containers import ContainersPane
from tui.verbs import bindings
from tui.widgets.command_line import CommandLine
from tui.widgets.host_header import HostHeader

if TYPE_CHECKING:
    from backends.broker.embedded import BrokerHandle
    from backends.wasm.pool import TaskPool
    from tui.panes.members import MembersPane

P = TypeVar("P", bound=Widget)

SHOW_PANE = "show-pane"
"""The workers that focus a pane shown before it was built, once it is mounted."""


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
        self._built = {PANES[0].id}
        """The panes built so far: the first one with the frame, the others when first wanted."""
        self._mounting: dict[str, AwaitMount] = {}
        """What the mount of each pane built after the frame is waited on with, by id."""

    def compose(self) -> ComposeResult:
        """Header, the first pane (the other tabs stay empty until shown), command line, footer."""
        yield HostHeader(id="host-header")
        with TabbedContent(id="panes"):
            for spec in PANES:
                with TabPane(f"{spec.key} {spec.title}", id=spec.id):
                    if spec is PANES[0]:
                        yield self._build(spec.id)
        yield CommandLine()
        yield Footer()

    def _build(self, pane_id: str) -> Widget:
        """A new widget for pane `pane_id`, pointed at the hosts on show."""
        if pane_id == "containers":
            return ContainersPane(self.hosts, self.config, self.sessions, all_hosts=self.all_hosts)
        if pane_id == "members":
            return self._members_pane()
        if pane_id == "wasm":
            from tui.panes.wasm import WasmPane

            return WasmPane(self.current, self.wasm_pool, self.broker)
        from tui.panes.providers import ProvidersPane

        return ProvidersPane(self.current, self.config, self.sessions, self.broker)

    def _members_pane(self) -> MembersPane:
        from tui.panes.members import MembersPane

        # In the all-hosts view every host's members; new ones go to the last host chosen.
        return MembersPane(
            self.current, self.config, self.sessions, all_hosts=self.hosts if self.all_hosts else ()
        )

    async def set_hosts(self, hosts: list[HostConfig], all_hosts: bool, current: HostConfig) -> None:
        """Point every built pane at `hosts` (one, or all of them in one view); the others are
        built for them when first shown."""
        self.hosts, self.all_hosts, self.current = hosts, all_hosts, current
        for pane_id in ("containers", "members"):
            if pane_id not in self._built:
                continue
            old = await self.ready_pane(pane_id, Widget)
            parent = old.parent
            assert isinstance(parent, Widget)
            # A fresh pane rather than a reset: the columns differ, and no state of the old host leaks.
            await old.remove()
            self._mounting[pane_id] = parent.mount(self._build(pane_id))
            await self._mounting[pane_id]
        if "wasm" in self._built:
            from tui.panes.wasm import WasmPane

            (await self.ready_pane("wasm", WasmPane)).host = current  # where a task's image comes from
        if "providers" in self._built:
            from tui.panes.providers import ProvidersPane

            (await self.ready_pane("providers", ProvidersPane)).host = current  # where P starts a provider
        if self.active_pane in ("containers", "members"):
            self.pane_widget(self.active_pane).focus()

    @property
    def active_pane(self) -> str:
        """The id of the pane on show."""
        return self.query_one(TabbedContent).active

    def pane_widget(self, pane_id: str) -> Widget:
        """The widget that fills pane `pane_id`, built the first time it is asked for: it is in
        the DOM at once, mounted (its children composed) a moment later (`ready_pane` waits)."""
        if pane_id not in self._built:
            self._built.add(pane_id)
            self._mounting[pane_id] = self.query_one(f"#{pane_id}", TabPane).mount(self._build(pane_id))
        return self.query_one(f"#pane-{pane_id}")

    async def ready_pane(self, pane_id: str, kind: type[P]) -> P:
        """The `kind` widget that fills pane `pane_id`, built if need be, once it is mounted."""
        pane = self.pane_widget(pane_id)
        if not pane.is_mounted and pane_id in self._mounting:
            await self._mounting[pane_id]
        assert isinstance(pane, kind)
        return pane

    def action_show_pane(self, pane_id: str) -> None:
        """Bring pane `pane_id` forward and focus it."""
        self.query_one(TabbedContent).active = pane_id
        self._focus_pane(pane_id)

    def show_containers_view(self, view: str) -> None:
        """Bring the Containers pane forward on `view` (images, volumes, networks)."""
        self.action_show_pane("containers")
        self.query_one(ContainersPane).action_switch_view(view)

    def _focus_pane(self, pane_id: str) -> None:
        """Focus pane `pane_id` (once it is mounted, for one built just now)."""
        pane = self.pane_widget(pane_id)
        if pane.is_mounted:
            pane.focus()
        else:
            self.run_worker(self._focus_when_ready(pane_id), group=SHOW_PANE)

    async def _focus_when_ready(self, pane_id: str) -> None:
        pane = await self.ready_pane(pane_id, Widget)
        if self.active_pane == pane_id:  # not if another pane was shown meanwhile
            pane.focus()

    def action_cycle_pane(self, step: int) -> None:
        """Move `step` panes along, wrapping around."""
        ids = [p.id for p in PANES]
        self.action_show_pane(ids[(ids.index(self.active_pane) + step) % len(ids)])

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A click on a tab focuses its pane, as the keys do."""
        if event.pane.id:
            self._focus_pane(event.pane.id)

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
        self._focus_pane(self.active_pane)

    def on_command_line_dismissed(self, _event: CommandLine.Dismissed) -> None:
        """Escape on the prompt."""
        self.close_command_line()
