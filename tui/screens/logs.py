"""A full-screen log view over any source: container logs now, instance consoles and task output later."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Label

from backends.streams import LogLine
from tui.verbs import bindings
from tui.widgets.log_view import LogView

# Given (since, tail), the batches of lines to show; called again when the user picks a range.
SourceFactory = Callable[[str | None, int | None], AsyncIterator[Sequence[LogLine]]]
DEFAULT_TAIL = 1000


class LogScreen(Screen[None]):
    """A title line, one `LogView` and the footer; `escape`/`q` go back (the source stops)."""

    BINDINGS = bindings("logs")

    def __init__(
        self,
        title: str,
        *,
        source: SourceFactory | None = None,
        lines: Sequence[LogLine] = (),
        source_name: str = "log",
        max_lines: int = 100_000,
        tail: int | None = DEFAULT_TAIL,
    ) -> None:
        super().__init__(classes="log-screen")
        self.title_text = title
        self.source = source
        self.static_lines = list(lines)
        self.view = LogView(max_lines, source_name=source_name, id="log-view")
        self.tail = tail

    def compose(self) -> ComposeResult:
        """Title, log, footer."""
        yield Label(self.title_text, classes="log-title", markup=False)
        yield self.view
        yield Footer()

    def on_mount(self) -> None:
        """Start reading (or show the fixed lines)."""
        # Fixed lines and no source: a document (an inspect), offered only the keys that make sense there.
        self.view.document = self.source is None
        if self.static_lines:
            self.view.append(self.static_lines)
            self.view.set_follow(False)
            self.view.lines_widget.scroll_home(animate=False)
        if self.source is not None:
            self.view.attach(self.source(None, self.tail))
        self.view.focus()

    def on_log_view_range_requested(self, event: LogView.RangeRequested) -> None:
        """Read the source again over the range the user picked."""
        if self.source is None:
            return
        self.view.detach()
        self.view.clear()
        self.view.attach(self.source(event.since, event.tail))

    def action_close(self) -> None:
        """Stop the source and go back."""
        self.view.detach()
        self.dismiss(None)
