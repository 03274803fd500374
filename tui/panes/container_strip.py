"""The strip under the Containers pane's table: the selected container in two lines, and its
CPU and memory sparklines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline

from backends.docker import short
from backends.docker_models import ContainerInfo, StatsPoint
from tui.format import human_bytes
from tui.panes.container_rows import status_text


class ContainerStrip(Horizontal):
    """Under the table: the selected row in two lines, and its CPU and memory sparklines while
    there is a history to draw (a stopped container has none; an empty one would draw a false
    baseline). With no row selected it takes no room."""

    DEFAULT_CSS = """
    ContainerStrip {
        height: 2;
        background: $panel;

        &.-empty { display: none; }

        & > #strip-summary {
            width: 1fr;
            height: 2;
            padding: 0 1;
            text-wrap: nowrap;
            text-overflow: ellipsis;
        }
        & > #strip-summary.-wrap { text-wrap: wrap; }
        & > .spark { width: 22; height: 2; padding: 0 1 0 0; display: none; }
        & > .spark.-shown { display: block; }
    }
    """

    def compose(self) -> ComposeResult:
        """Summary, then two sparklines."""
        yield Label(id="strip-summary")
        with Vertical(classes="spark"):
            yield Label("CPU", id="cpu-label")
            yield Sparkline([], id="cpu-spark")
        with Vertical(classes="spark"):
            yield Label("MEM", id="mem-label")
            yield Sparkline([], id="mem-spark")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._said: dict[str, str] = {}  # label id -> the markup it shows

    def show(self, container: ContainerInfo | None, history: Sequence[StatsPoint], now: float) -> None:
        """Describe `container` (or nothing) with its stats history; its status aged to `now`."""
        if container is None:
            self.say("")
            return
        self.set_class(False, "-empty")
        self.query_one("#strip-summary").set_class(False, "-wrap")
        first = f"[b]{escape(container.name)}[/b]  ·  {escape(status_text(container, now))}"
        second = (container.short_id, short(container.image), container.ports)
        self._say("strip-summary", first + "\n" + "  ·  ".join(escape(bit) for bit in second if bit))
        self._show_sparks(len(history) >= 2)  # one point draws as a full bar: no trend yet
        if len(history) < 2:
            return
        self.query_one("#cpu-spark", Sparkline).data = [p.cpu_percent or 0.0 for p in history]
        self.query_one("#mem-spark", Sparkline).data = [float(p.memory) for p in history]
        last = history[-1]
        self._say("cpu-label", f"CPU {last.cpu_percent:.1f}%" if last.cpu_percent is not None else "CPU -")
        self._say("mem-label", f"MEM {human_bytes(last.memory)}")

    def say(self, text: str) -> None:
        """Show `text` (not markup) alone, over both lines (a host's error in full); none: no room."""
        self.set_class(not text, "-empty")
        self.query_one("#strip-summary").set_class(True, "-wrap")
        self._say("strip-summary", escape(text))
        self._show_sparks(False)

    def _show_sparks(self, shown: bool) -> None:
        for spark in self.query(".spark"):
            spark.set_class(shown, "-shown")

    def _say(self, label: str, markup: str) -> None:
        # Label.update lays out and redraws the whole screen even for the same text, and the strip is
        # told again after every stats sample (every ~2 s): only a new text is worth that.
        if self._said.get(label) != markup:
            self._said[label] = markup
            self.query_one(f"#{label}", Label).update(markup)
