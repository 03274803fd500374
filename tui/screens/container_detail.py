"""A container in tabs (`enter` on its row): summary, env, labels, mounts, ports, networks, health
checks, restart policy and limits (editable, as `docker update`), and the raw inspect document.

What each tab says is worked out from the inspect document by tui/screens/detail_tabs.py; this
screen reads the document, draws it, reads it again when the engine reports an event of the
container (and every few seconds while the Health tab is open: a check brings no event unless
the status changes), and holds the keys.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Label, TabbedContent, TabPane

from backends.config import HostConfig
from backends.docker import HEALTH_CHECK_ENDED, LIST_EVENTS, DockerBackend
from backends.docker_limits import UNLIMITED
from backends.errors import BerthError, Invalid
from backends.parse_container import CPUS, RESTART_POLICY
from backends.streams import LogLine
from backends.units import COUNT, SIZE, Grammar
from tui.acting import permitted, run_action
from tui.screens.copy_prompt import ask_copy, container_target
from tui.screens.detail_tabs import LIMIT_LABELS, RAW_TAB, TABS, Document, limit_texts, raw_lines
from tui.screens.form import Field, FormScreen
from tui.verbs import bindings
from tui.widgets.command_line import CommandLine
from tui.widgets.log_view import LogView
from tui.widgets.resource_table import ResourceTable

EVENTS_RETRY = 5.0
"""Seconds before following the engine's events again after the stream broke."""
TAB_IDS = (*(tab.id for tab in TABS), RAW_TAB)
"""Every tab, in order: the keys 1-9 show them."""
LIMIT_GRAMMARS: dict[str, Grammar[Any]] = {
    "restart": RESTART_POLICY,
    "memory": SIZE,
    "memory_swap": SIZE,
    "memory_reservation": SIZE,
    "cpus": CPUS,
    "pids": COUNT,
}
"""How each field of the limits form is read (the keys of `detail_tabs.LIMIT_LABELS`)."""


class CommandPrompt(ModalScreen[None]):
    """The `:` prompt over the detail screen (the main screen's lives in its own layout): the app
    runs what is typed, as from the main screen (`:jobs` opens over this screen), and the prompt
    closes on enter or `esc`."""

    DEFAULT_CSS = """
    CommandPrompt { align: left bottom; background: $background 0%; }
    CommandPrompt > CommandLine { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        """The one line, at the bottom."""
        yield CommandLine()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        """Close; the message goes on to the app, which runs the command."""
        self.dismiss(None)

    def on_command_line_dismissed(self, event: CommandLine.Dismissed) -> None:
        """`esc`: close without running anything."""
        event.stop()
        self.dismiss(None)


class ContainerDetailScreen(Screen[None]):
    """One container of one host, in tabs; `escape`/`q` go back."""

    BINDINGS = bindings("container_detail")
    DEFAULT_CSS = """
    ContainerDetailScreen {
        & > TabbedContent { height: 1fr; }
        & TabPane { height: 1fr; padding: 0; }
        & .tab-note { width: 1fr; height: auto; padding: 0 1; color: $text-muted; }
        & .tab-note.-empty { display: none; }
    }
    """

    def __init__(self, backend: DockerBackend, host: HostConfig, container_id: str, name: str) -> None:
        super().__init__(classes="container-detail")
        self.backend = backend
        self.host = host
        self.container_id = container_id
        self.name_text = name
        self.document: Document = {}
        """The inspect document as last read."""
        self.reveal = False
        """Whether secret values are on show."""
        self.loads = 0
        """How many times the document was read and drawn (tests wait on it)."""
        self.error = ""
        """Why the last read failed ("" when it did not)."""
        self._raw_shown: list[str] = []

    # Layout ------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """The title, the tabs (a note and a table each, the raw document last) and the footer."""
        yield Label(self.title_text(), id="detail-title", classes="log-title", markup=False)
        with TabbedContent(id="detail-tabs"):
            for number, tab in enumerate(TABS, 1):
                with TabPane(f"{number} {tab.title}", id=f"tab-{tab.id}"):
                    yield Label("", id=f"note-{tab.id}", classes="tab-note -empty", markup=False)
                    yield ResourceTable(
                        tab.columns,
                        sort_reverse=tab.sort_reverse,
                        id=f"table-{tab.id}",
                        groupable=False,
                        empty_message="Reading…",
                    )
            with TabPane(f"{len(TABS) + 1} Raw", id=f"tab-{RAW_TAB}"):
                yield LogView(source_name=f"{self.name_text}-inspect", id="raw-view")
        yield Footer()

    def title_text(self) -> str:
        """What the title line says: the container and its host, and why it can't be read."""
        title = f"container · {self.name_text} · {self.host.name}"
        return f"{title} — {self.error}" if self.error else title

    def on_mount(self) -> None:
        """Read the document and follow the container's events."""
        self.raw_view.document = True
        self.reload()
        self.run_worker(self._follow_events(), group="detail-events", exit_on_error=False)
        self.call_after_refresh(self._focus_tab)

    def table(self, tab_id: str) -> ResourceTable:
        """The table of tab `tab_id`."""
        return self.query_one(f"#table-{tab_id}", ResourceTable)

    @property
    def raw_view(self) -> LogView:
        """The Raw tab's log view of the document."""
        return self.query_one("#raw-view", LogView)

    @property
    def active_tab(self) -> str:
        """The id of the tab on show (as in `TAB_IDS`)."""
        return self.query_one(TabbedContent).active.removeprefix("tab-")

    # Reading -----------------------------------------------------------------------------------

    @work(exclusive=True, group="detail-read")
    async def reload(self) -> None:
        """Read the document again and draw every tab."""
        try:
            document, self.error = await self.backend.inspect(self.container_id), ""
        except BerthError as exc:
            document, self.error = None, exc.message
        if self.leaving:
            return
        if document is not None:
            self.document = document
            self.name_text = str(document.get("Name") or self.name_text).lstrip("/")
            self.draw()
        self.query_one("#detail-title", Label).update(self.title_text())
        self.loads += 1

    @property
    def leaving(self) -> bool:
        """True once the screen is on its way out (closed, or the app quitting): its widgets are
        being taken away, and a read that ends then draws nothing."""
        return not self.app.is_running or self not in self.app.screen_stack

    def draw(self) -> None:
        """Draw each tab from the document (secrets as `reveal` says)."""
        now = time.time()
        for tab in TABS:
            table = self.table(tab.id)
            table.empty_message = tab.empty
            table.update_rows(tab.rows(self.document, self.reveal, now))
            note = self.query_one(f"#note-{tab.id}", Label)
            text = tab.note(self.document, self.reveal)
            note.update(text)
            note.set_class(not text, "-empty")
        lines = raw_lines(self.document, self.reveal)
        if lines != self._raw_shown:
            view, self._raw_shown = self.raw_view, lines
            top = view.lines_widget.scroll_y  # a reader of the document keeps their place
            view.clear()
            view.append([LogLine(line) for line in lines])
            view.set_follow(False)
            view.lines_widget.scroll_to(y=top, animate=False)

    async def _follow_events(self) -> None:
        """Read the document again whenever the engine reports an event of this container: a
        change of its state, and the end of each health check (which brings no state event
        unless the status changes), so the Health tab shows each check as it ends."""
        actions = (*LIST_EVENTS, HEALTH_CHECK_ENDED)
        while True:
            try:
                async for _event in self.backend.events(
                    since=time.time(), container=self.container_id, actions=actions
                ):
                    self.reload()
            except BerthError:
                pass  # the engine went away: `r` still reads, and following starts again soon
            await asyncio.sleep(EVENTS_RETRY)

    # Keys --------------------------------------------------------------------------------------

    def action_reload(self) -> None:
        """Read the document again."""
        self.reload()

    def action_show_tab(self, tab_id: str) -> None:
        """Show tab `tab_id`."""
        self.query_one(TabbedContent).active = f"tab-{tab_id}"
        self._focus_tab()

    def action_next_tab(self) -> None:
        """Show the next tab (after the last, the first)."""
        self.action_show_tab(TAB_IDS[(TAB_IDS.index(self.active_tab) + 1) % len(TAB_IDS)])

    def action_previous_tab(self) -> None:
        """Show the previous tab (before the first, the last)."""
        self.action_show_tab(TAB_IDS[(TAB_IDS.index(self.active_tab) - 1) % len(TAB_IDS)])

    @on(TabbedContent.TabActivated)
    def _focus_tab(self) -> None:
        """Keys go to what the tab on show holds (its table, or the document)."""
        tab = self.active_tab
        (self.raw_view if tab == RAW_TAB else self.table(tab)).focus()

    def action_toggle_secrets(self) -> None:
        """Show the hidden values of secret-looking variables, or hide them again."""
        self.reveal = not self.reveal
        if self.document:
            self.draw()
        self.notify("Secret values shown." if self.reveal else "Secret values hidden.", timeout=2)

    def action_edit_limits(self) -> None:
        """A form for the restart policy and limits, as they are now; what changed is applied."""
        if not self.document:
            return
        current = limit_texts(self.document)
        fields = [
            Field(
                key,
                f"{label} (empty: no limit)" if key in UNLIMITED else label,
                value=current[key],
                grammar=LIMIT_GRAMMARS[key],
                required=key == "restart",
            )
            for key, label in LIMIT_LABELS.items()
        ]

        def submit(values: dict[str, str]) -> dict[str, Any]:
            changes: dict[str, Any] = {}
            for key, written in values.items():
                if written == current[key]:
                    continue
                if written:
                    changes[key] = LIMIT_GRAMMARS[key].parse(written)
                elif key in UNLIMITED:
                    changes[key] = UNLIMITED[key]
                else:
                    raise Invalid(
                        f"{LIMIT_LABELS[key]}: the engine cannot take this limit away from a container.",
                        "Write a value, or recreate the container without it.",
                    )
            if not changes:
                raise Invalid("Nothing changed: edit a field, or press Escape.")
            return changes

        def chosen(changes: dict[str, Any] | None) -> None:
            if changes:
                name = self.name_text
                run_action(
                    self.app,  # not this screen: closing it must not cancel the change halfway
                    f"change the limits of {name}",
                    lambda: self.backend.set_limits(self.container_id, name=name, **changes),
                    done=f"Limits changed: {name}",
                    after=lambda: self.reload() if self.is_attached else None,
                    group="detail-actions",
                )

        self.app.push_screen(
            FormScreen(f"Limits of {self.name_text} on {self.host.name}", fields, submit, "Apply"), chosen
        )

    def action_copy(self) -> None:
        """The copy form: files in or out of this container, run as a job."""
        ask_copy(self, container_target(self.backend, self.host, self.container_id, self.name_text))

    def acting_hosts(self) -> list[HostConfig]:
        """The container's host: what the read-only rule asks about."""
        return [self.host]

    async def action_command_line(self) -> None:
        """Open the `:` prompt, focused before the next key is routed."""
        prompt = CommandPrompt()
        await self.app.push_screen(prompt)
        prompt.set_focus(prompt.query_one(CommandLine))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Looking is allowed read-only; the edit is hidden then. `:` typed in the search prompt
        is a letter of the search."""
        if action == "command_line":
            return not isinstance(self.focused, Input)
        return permitted(self, action, parameters)

    def action_close(self) -> None:
        """Back to the pane; but first, in the Raw tab, end the search on show (as `esc` clears a
        table's filter before it leaves), so a second `esc` leaves."""
        if self.active_tab == RAW_TAB and self.raw_view.matches.query:
            self.raw_view.clear_search()
            return
        self.dismiss(None)
