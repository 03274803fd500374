"""What a pane shows until its issue lands: a plain statement that it is not built yet."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Center, Middle
from textual.widgets import Static

from tui.panes import PaneSpec


class NotBuiltPane(Middle):
    """A pane whose features are not built yet; says so, and says what it will manage."""

    can_focus = True

    def __init__(self, spec: PaneSpec) -> None:
        super().__init__(id=f"pane-{spec.id}", classes="pane not-built")
        self.spec = spec

    def compose(self) -> ComposeResult:
        """One centred notice."""
        with Center():
            yield Static(
                f"[b]{self.spec.title}[/b] is not built yet.\n\n"
                f"It will manage {self.spec.manages}.\n"
                f"[dim]Tracked as issue {self.spec.issue}.[/dim]",
                classes="notice",
            )
