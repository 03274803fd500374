"""The question every destructive action asks first, naming what it will destroy."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Label, Static

from tui.verbs import bindings


def subject(names: list[str], noun: str, plural: str | None = None) -> str:
    """What a question acts on: "task 84410538 (t.wasm)" for one, "3 tasks" for several."""
    if len(names) == 1:
        return f"{noun} {names[0]}"
    return f"{len(names)} {plural or noun + 's'}"


class ConfirmScreen(ModalScreen[tuple[bool, bool]]):
    """Ask before acting: `y`/Enter on the danger button confirms, `n`/Escape cancels.

    Returns (confirmed, option) where `option` is the state of the optional checkbox
    (e.g. "also remove its volumes").
    """

    BINDINGS = bindings("confirm")

    def __init__(
        self, question: str, targets: list[str], verb: str, option: str | None = None, *, keep: str = "Cancel"
    ) -> None:
        super().__init__(classes="confirm")
        self.question = question
        self.targets = targets
        self.verb = verb
        self.option = option
        self.keep = keep
        """The other button's words, where "Cancel" would be ambiguous (cancelling a job)."""

    def compose(self) -> ComposeResult:
        """The question, the names, an optional checkbox, and the two buttons."""
        shown = self.targets[:12]
        more = len(self.targets) - len(shown)
        names = "\n".join(f"  • {name}" for name in shown) + (f"\n  … and {more} more" if more else "")
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title", markup=False)
            yield Static(names, classes="targets", markup=False)
            if self.option:
                yield Checkbox(self.option, id="option")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.verb} (y)", variant="error", id="yes")
                yield Button(f"{self.keep} (n)", id="no")
        yield Footer()

    def on_mount(self) -> None:
        """Start on Cancel, so a stray Enter destroys nothing."""
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A button answers."""
        self.action_answer(event.button.id == "yes")

    def action_answer(self, confirmed: bool) -> None:
        """Close with the answer."""
        option = self.query("#option")
        ticked = bool(option and self.query_one("#option", Checkbox).value)
        self.dismiss((confirmed, ticked))
