"""The berth console: a Textual app with four panes over the hosts of the inventory."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.actions import ActionParseResult, parse
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input

from backends.config import Config, HostConfig, adhoc_host
from backends.config_changes import save_host, save_theme
from backends.errors import BerthError, Denied, HostKeyUnknown, NotFound
from backends.hosts import HostSession, Sessions, probe_host
from backends.paths import user_themes_dir
from themes.loader import DEFAULT_THEME, SHIPPED_DIR, load_themes
from tui.acting import action_refusal
from tui.commands import parse_command
from tui.error_log import log_unexpected
from tui.jobs import Jobs
from tui.palette import PaneCommands
from tui.panes import PANES
from tui.read_only import refusal
from tui.screens.confirm import ConfirmScreen
from tui.screens.main import MainScreen
from tui.verbs import bindings
from tui.widgets.command_line import CommandLine
from tui.widgets.host_header import HostHeader
from tui.widgets.scrollbars import use_whole_cell_scrollbars

if TYPE_CHECKING:
    from backends.broker.embedded import BrokerHandle
    from backends.wasm.pool import TaskPool
    from tui.screens.help import HelpRow

PROBE_INTERVAL = 10.0
ALL_HOSTS = "all"


class BerthApp(App[None]):
    """The console. `config` is the loaded config file; `host` the inventory name to start on."""

    CSS_PATH = "styles/app.tcss"
    TITLE = "berth"
    COMMANDS = App.COMMANDS | {PaneCommands}
    BINDINGS = bindings("app")

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Show a notice as plain text, whatever the caller asked: berth's notices quote what people
        typed and what engines answered (`[link=…]` in a name made Textual's markup parser raise
        and end the console), and none of them is written in markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def _finder(self) -> Widget | None:
        """The table or log around the focused widget that has a `/` prompt."""
        node = self.focused
        while node is not None and not isinstance(node, Screen):
            if hasattr(node, "action_open_filter") or hasattr(node, "action_open_search"):
                return node if isinstance(node, Widget) else None
            node = node.parent  # type: ignore[assignment]
        return None

    def __init__(
        self,
        config: Config,
        host: str | None = None,
        *,
        user_themes: Path | None = None,
        read_only: bool = False,
    ) -> None:
        # NO_COLOR (no-color.org): Textual then greys colours out unless the app runs on ANSI
        # colours, where it drops them; ask for that so no colour reaches the terminal at all.
        super().__init__(ansi_color=True if os.environ.get("NO_COLOR") else None)
        use_whole_cell_scrollbars()
        self.config = config
        self.read_only = read_only
        """`berth --read-only`: nothing changes (kept apart from the config, which may be saved)."""
        self.all_hosts = host == ALL_HOSTS
        if host and host.startswith("ssh://"):
            start: HostConfig | None = adhoc_host(host)  # for this run only; never saved
        else:
            start = config.host(host) if host and not self.all_hosts else config.hosts[0]
        if start is None:
            raise NotFound(f"No host called {host!r} in the inventory.", "Run berth with a name from it.")
        self.current_host = start
        self.sessions = Sessions(config)
        self._pool: TaskPool | None = None
        self._pool_lock = asyncio.Lock()
        self._broker: BrokerHandle | None = None
        self._broker_lock = asyncio.Lock()
        self._asked: set[str] = set()
        self.jobs = Jobs(self)
        self.keymap: dict[str, str] = {}
        """The user's keymap entries in force (those that passed `check_keymap`)."""
        self._theme_errors = self._register_themes(user_themes or user_themes_dir())

    def _register_themes(self, user_dir: Path) -> list[str]:
        loaded = load_themes(SHIPPED_DIR, user_dir)
        for theme in loaded.themes:
            self.register_theme(theme)
        return loaded.errors

    def get_default_screen(self) -> Screen[None]:
        """The frame with the four panes."""
        return MainScreen(
            self.shown_hosts,
            self.config,
            self.sessions,
            self.all_hosts,
            self.current_host,
            self.wasm_pool,
            self.broker,
        )

    def _session_named(self, name: str) -> HostSession:
        """The session of inventory host `name` (the task pool takes `wasi/wasm` images through it)."""
        host = self.config.host(name)
        if host is None:
            raise NotFound(f"No host {name!r} in the inventory.", "Add it with :host add, or pick another.")
        return self.sessions.get(host)

    async def wasm_pool(self) -> TaskPool:
        """berth's local wasm task pool, started the first time a pane asks for it."""
        async with self._pool_lock:
            if self._pool is None:
                from backends.wasm.pool import TaskPool  # wasmtime and the workers load only then

                pool = TaskPool(session_for=self._session_named)
                await pool.start()
                self._pool = pool
        return self._pool

    async def broker(self) -> BrokerHandle:
        """The broker the console uses: `[broker] url`, else one embedded here with a local
        provider, started the first time a pane asks for it."""
        async with self._broker_lock:
            if self._broker is None:
                from backends.broker.embedded import open_broker  # aiohttp's server loads only then

                self._broker = await open_broker(self.config.broker)
        return self._broker

    async def on_unmount(self) -> None:
        """Close every host's connection (and remove the forwarded sockets), stop the task pool
        and the embedded broker."""
        if self._broker is not None:
            await self._broker.close()
        await self.sessions.close()
        if self._pool is not None:
            await self._pool.close()

    @property
    def main_screen(self) -> MainScreen:
        """The frame, wherever the screen stack is."""
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    def on_mount(self) -> None:
        """Apply theme and keymap from config; report broken theme files."""
        wanted = self.config.ui.theme
        if wanted in self.available_themes:
            self.theme = wanted
        else:
            self.theme = DEFAULT_THEME
            self.notify(f"Theme {wanted!r} is not installed; using {DEFAULT_THEME}.", severity="warning")
        for error in self._theme_errors:
            self.notify(error, title="Theme file skipped", severity="warning", timeout=10)
        if self.config.ui.keymap:  # checking it loads every module of the console: only then
            from tui.keymap import binding_sections, check_keymap

            keymap, problems = check_keymap(self.config.ui.keymap, binding_sections())
            for problem in problems:
                self.notify(problem, title="Keymap entry skipped", severity="warning", timeout=10)
            self.keymap = keymap
            if keymap:
                self.set_keymap(keymap)

    def on_ready(self) -> None:
        """The frame is on screen: focus the first pane and probe the host."""
        self.main_screen.action_show_pane(PANES[0].id)
        self._show_host()
        # Everything loaded so far lives as long as the app: keep it out of the collector's full
        # passes, which otherwise cost 25-45 ms each here and stall keys during a log flood.
        gc.freeze()
        gc.enable()  # `berth` starts the console with the collector off (tui.cli): on from now

    # Hosts -------------------------------------------------------------------------------------

    @property
    def shown_hosts(self) -> list[HostConfig]:
        """The hosts on show: the current one, or every host in the all-hosts view."""
        return list(self.config.hosts) if self.all_hosts else [self.current_host]

    def _show_host(self) -> None:
        header = self.main_screen.query_one(HostHeader)
        header.host_name = self.current_host.name
        header.host_url = self.current_host.url
        header.state = None
        header.fleet = None
        self._asked.clear()
        self.probe_hosts()

    @work(exclusive=True, group="probe")
    async def probe_hosts(self) -> None:
        """Probe the hosts on show, show the result, and probe again every 10 s or on any change.

        Hosts are probed concurrently and one that is down answers with its state at once, so a
        dead host never holds the others up; the next round starts only after this one ends.
        """
        while True:
            sessions = [self.sessions.get(h) for h in self.shown_hosts]
            versions = [s.version for s in sessions]
            try:
                states = await asyncio.gather(*(probe_host(s, wait=False) for s in sessions))
            except Exception as exc:  # a probe must never take the console down
                self.notify(log_unexpected(exc), severity="error")
                return
            try:
                header = self.main_screen.query_one(HostHeader)
            except NoMatches:  # the console is closing: its screen is already gone
                return
            if self.all_hosts:
                header.fleet = tuple(states)
            else:
                header.state = states[0]
            for session in sessions:
                self._ask_to_trust(session)
            waits = [asyncio.ensure_future(s.changed(v)) for s, v in zip(sessions, versions, strict=True)]
            waits.append(asyncio.ensure_future(asyncio.sleep(PROBE_INTERVAL)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()

    def _ask_to_trust(self, session: HostSession) -> None:
        """Show an unknown host key's fingerprint once and let the user trust it (or not)."""
        error = session.error
        if not isinstance(error, HostKeyUnknown) or session.host.name in self._asked:
            return
        self._asked.add(session.host.name)
        self.push_screen(
            ConfirmScreen(
                f"Trust the host key of {error.label} ({session.host.name})? It is not in known_hosts.",
                [error.fingerprint, "Compare it with the host's own: ssh-keygen -lf /etc/ssh/ssh_host_*.pub"],
                "Trust",
            ),
            lambda answer: session.trust() if answer and answer[0] else None,
        )

    def switch_host(self, name: str) -> None:
        """Point the console at inventory host `name`, or at every host with `all`."""
        if name == ALL_HOSTS:
            self.all_hosts = True
        else:
            host = self.config.host(name)
            if host is None:
                names = ", ".join(h.name for h in self.config.hosts)
                raise NotFound(f"No host called {name!r}.", f"The inventory has: {names}.")
            self.current_host, self.all_hosts = host, False
        self.run_worker(
            self.main_screen.set_hosts(self.shown_hosts, self.all_hosts, self.current_host), group="switch"
        )
        self._show_host()
        self.notify(
            "All hosts" if self.all_hosts else f"Host: {self.current_host.name} ({self.current_host.url})"
        )

    def read_only_reason(self) -> str | None:
        """Why berth changes nothing at all (`--read-only`, `[ui] read_only`), or None."""
        return refusal(self.config, flag=self.read_only)

    def action_add_host(self) -> None:
        """Ask for a new host, add it to the inventory and save the config (refused read-only:
        the config file is not written then)."""
        if why := self.read_only_reason():
            raise Denied(f"{why}: no host is added.", "berth --host ssh://user@host looks at one for a run.")

        def added(updated: Config | None) -> None:
            if updated is None:
                return
            self.config.hosts = updated.hosts
            host = updated.hosts[-1]
            self.save_config(lambda config: save_host(config, host))
            self.notify(f"Added {host.name}; switch to it with H.")

        from tui.screens.add_host import add_host_form

        self.push_screen(add_host_form(self.config), added)

    def action_pick_host(self) -> None:
        """Choose a host from the inventory, or all of them."""
        choices = [(h.name, f"{h.name}  {h.url}") for h in self.config.hosts]
        choices.append((ALL_HOSTS, "all hosts  (one table, a host column)"))
        current = ALL_HOSTS if self.all_hosts else self.current_host.name
        from tui.screens.picker import PickerScreen

        self.push_screen(
            PickerScreen("Switch host", choices, current),
            lambda name: self._guard(self.switch_host, name) if name else None,
        )

    # Themes ------------------------------------------------------------------------------------

    def switch_theme(self, name: str) -> None:
        """Use theme `name` and remember it in the config file."""
        if name not in self.available_themes:
            raise NotFound(
                f"No theme called {name!r}.", f"Installed: {', '.join(sorted(self.available_themes))}."
            )
        self.theme = name
        if why := self.read_only_reason():
            # The look is the user's own, so it switches; but read-only writes no file.
            self.notify(f"Theme {name} for this run only: {why}.", timeout=4)
            return
        old, self.config.ui.theme = self.config.ui.theme, name
        self.save_config(lambda config: save_theme(config, old))

    @work(thread=True, exclusive=True, group="save-config")
    def save_config(self, save: Callable[[Config], object]) -> None:
        """Write the config file off the UI thread with `save` (one of `backends.config_changes`,
        which records the change); a failure is shown, never hidden. Never in read-only mode (the
        one place that writes it, so no path slips through)."""
        if self.read_only_reason():
            return
        try:
            save(self.config)
        except BerthError as exc:
            self.call_from_thread(self.notify, str(exc), title="Config not saved", severity="error")

    def action_pick_theme(self) -> None:
        """Choose a theme from the installed ones."""
        choices = [(name, name) for name in sorted(self.available_themes)]
        from tui.screens.picker import PickerScreen

        self.push_screen(
            PickerScreen("Switch theme", choices, self.theme),
            lambda name: self._guard(self.switch_theme, name) if name else None,
        )

    # Commands, help, palette -------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Leave ':' to text fields and dialogs: the prompt opens only over the main screen."""
        if action == "command_line":
            return self.screen is self.main_screen and not isinstance(self.focused, Input)
        if action == "find":
            return not isinstance(self.focused, Input) and self._finder() is not None
        return True

    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Run an action (a key's, or one asked for by name), unless it changes state and berth
        or its host is read-only: then one notification says why and the action counts as done.

        Every key goes through here, so a verb hidden from the footer (its node's `check_action`
        consults the same `action_refusal`) is refused with a reason rather than ignored.
        """
        destination, name, params = action if isinstance(action, tuple) else parse(action)
        target = self._action_node(destination, default_namespace, namespaces)
        if target is not None and (why := action_refusal(target, name, params)):
            self.notify(f"{why}: nothing was changed.", title="Read-only", severity="warning", timeout=4)
            return True
        return await super().run_action(action, default_namespace, namespaces)

    def _action_node(
        self, destination: str, default: DOMNode | None, namespaces: Mapping[str, DOMNode] | None
    ) -> DOMNode | None:
        """The node an action with namespace `destination` ("" for none) runs on, as Textual picks
        it; None for a namespace Textual refuses (its `run_action` then says why)."""
        if namespaces is not None and destination in namespaces:
            return namespaces[destination]
        if not destination:
            return self if default is None else default
        if destination == "app":
            return self
        if destination == "screen":
            return self.screen
        return self.focused if destination == "focused" else None

    def action_find(self) -> None:
        """Open the `/` prompt of the table or log in focus."""
        finder = self._finder()
        opener = getattr(finder, "action_open_filter", None) or getattr(finder, "action_open_search", None)
        if opener is not None:
            opener()

    def action_command_line(self) -> None:
        """Open the `:` prompt."""
        self.main_screen.open_command_line()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Run what was typed on the `:` prompt."""
        if not isinstance(event.input, CommandLine):
            return
        if event.value.strip():
            self._guard(self.run_command, event.value)
        # Closed after the command ran, so focus lands on the pane the command may have chosen.
        self.main_screen.close_command_line()

    def run_command(self, text: str) -> None:
        """Run one `:` command (`:host NAME`, `:theme NAME`, `:q`, pane names, `:help`)."""
        command = parse_command(text)
        arg = command.args[0] if command.args else None
        if command.verb == "quit":
            self.call_later(self.action_quit)
        elif command.verb == "help":
            self.action_help()
        elif command.verb == "audit":
            self.action_audit()
        elif command.verb == "jobs":
            self.action_jobs()
        elif command.verb == "df":
            from tui.screens.disk_usage import DiskUsageScreen

            hosts, sessions = self.shown_hosts, self.sessions
            self.push_screen(DiskUsageScreen(self.config, hosts, sessions, all_hosts=self.all_hosts))
        elif command.verb == "host" and arg == "add":
            self.action_add_host()
        elif command.verb == "host" and arg:
            self.switch_host(arg)
        elif command.verb == "host":
            self.action_pick_host()
        elif command.verb == "theme" and arg:
            self.switch_theme(arg)
        elif command.verb == "theme":
            self.action_pick_theme()
        elif command.verb == "pane.containers":  # the containers themselves, from any of its views
            self.main_screen.show_containers_view("containers")
        elif command.verb.startswith("pane."):
            self.main_screen.action_show_pane(command.verb.removeprefix("pane."))
        elif command.verb.startswith("view."):
            self.main_screen.show_containers_view(command.verb.removeprefix("view."))

    def _guard(self, func: Callable[..., object], *args: object) -> None:
        """Call `func(*args)`, turning errors into a notification instead of a crash."""
        try:
            func(*args)
        except BerthError as exc:
            self.notify(str(exc), severity="error")
        except Exception as exc:
            self.notify(log_unexpected(exc), severity="error")

    def help_rows(self) -> list[HelpRow]:
        """Every binding of the console, its panes, widgets and screens (those work only where
        they are shown, but are listed so they can be found and remapped by id), plus the `:`
        commands."""
        from tui.keymap import binding_sections  # every module of the console: only for help
        from tui.screens.help import binding_rows, command_rows

        palette = Binding("ctrl+p", "command_palette", "Command palette")
        rows = []
        for section in binding_sections():
            listed = [*section.bindings, palette] if section.owner is type(self) else list(section.bindings)
            rows += binding_rows(section.name, listed, self.keymap)
        return rows + command_rows()

    def action_jobs(self) -> None:
        """The long operations of this run, live; c cancels."""
        from tui.screens.jobs import JobsScreen

        if not isinstance(self.screen, JobsScreen):
            self.push_screen(JobsScreen(self.jobs))

    async def action_quit(self) -> None:
        """Quit; while jobs run, ask first (quitting cancels them)."""
        running = self.jobs.running()
        if not running:
            self.exit()
            return

        def answered(answer: tuple[bool, bool] | None) -> None:
            if answer and answer[0]:
                self.exit()

        self.push_screen(
            ConfirmScreen(
                f"{len(running)} job(s) still running: quit and cancel them?",
                [f"#{j.id} {j.title} ({j.host})" for j in running],
                "Quit",
            ),
            answered,
        )

    def action_audit(self) -> None:
        """The audit log, newest first, in a filterable table."""
        from tui.screens.audit import AuditScreen

        if not isinstance(self.screen, AuditScreen):
            self.push_screen(AuditScreen())

    def action_help(self) -> None:
        """Show every binding."""
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_rows()))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """berth's entries in the command palette (`ctrl+p`), next to Textual's own."""
        for spec in PANES:
            yield SystemCommand(
                f"pane: {spec.title}",
                f"Show the {spec.title} pane",
                lambda pane_id=spec.id: self.main_screen.action_show_pane(pane_id),
            )
        for host in self.config.hosts:
            yield SystemCommand(
                f"host: {host.name}",
                f"Switch to {host.url}",
                lambda n=host.name: self._guard(self.switch_host, n),
            )
        yield SystemCommand(
            "host: all", "Every host in one table", lambda: self._guard(self.switch_host, ALL_HOSTS)
        )
        read_only = self.read_only_reason()
        if not read_only:  # it writes the config file
            yield SystemCommand(
                "host: add…", "Add a host to the inventory", lambda: self._guard(self.action_add_host)
            )
        for name in sorted(self.available_themes):
            yield SystemCommand(
                f"theme: {name}",
                "Switch theme (this run only: read-only)" if read_only else "Switch theme (saved to config)",
                lambda n=name: self._guard(self.switch_theme, n),
            )
        yield SystemCommand(
            "audit: log", "Every action that changed something, newest first", self.action_audit
        )
        yield SystemCommand("jobs", "Long operations with their progress; cancel them", self.action_jobs)
        yield SystemCommand("help: keys", "Show every key binding", self.action_help)
        yield SystemCommand("quit", "Quit berth", self.exit)
