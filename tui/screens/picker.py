"""A small modal list to pick one name from (hosts, themes); returns the choice or None."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList
from textual.widgets.option_list import Option

from tui.verbs import bindings


class PickerScreen(ModalScreen[str | None]):
    """Pick one of `choices` (id, label) with the arrows and `enter`; `escape` cancels."""

    BINDINGS = bindings("picker")

    def __init__(self, title: str, choices: list[tuple[str, str]], current: str | None = None) -> None:
        super().__init__(classes="picker")
        self.title_text = title
        self.choices = choices
        self.current = current

    def compose(self) -> ComposeResult:
        """A title and the list of choices, the current one highlighted."""
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            yield OptionList(*(Option(Content(label), id=choice_id) for choice_id, label in self.choices))
        yield Footer()

    def on_mount(self) -> None:
        """Start on the current choice."""
        options = self.query_one(OptionList)
        ids = [choice_id for choice_id, _ in self.choices]
        if self.current in ids:
            options.highlighted = ids.index(self.current)
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Return the chosen id."""
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Return nothing."""
        self.dismiss(None)
