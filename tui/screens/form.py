"""A small modal form: labelled fields, checked by the caller before it closes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from backends.errors import BerthError


@dataclass(frozen=True)
class Field:
    """One input of a form: its id (the key of the submitted values), label and hint."""

    id: str
    label: str
    placeholder: str = ""
    value: str = ""


class FormScreen(ModalScreen[Any]):
    """Ask for `fields`; `submit(values)` turns them into the result or raises `BerthError`.

    A raised error is shown under the fields and the form stays open with what was typed; Enter
    moves to the next field and submits from the last; Escape closes with None.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="form.cancel")]

    def __init__(
        self, title: str, fields: Sequence[Field], submit: Callable[[dict[str, str]], Any], verb: str = "OK"
    ) -> None:
        super().__init__(classes="form")
        self.title_text = title
        self.fields = list(fields)
        self.submit = submit
        self.verb = verb

    def compose(self) -> ComposeResult:
        """One labelled input per field, the error line and the buttons."""
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            for field in self.fields:
                yield Label(field.label)
                yield Input(field.value, placeholder=field.placeholder, id=f"field-{field.id}", compact=True)
            yield Label("", id="form-error")
            with Horizontal(classes="buttons"):
                yield Button(self.verb, variant="primary", id="submit")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Start in the first field."""
        self.set_focus(self.query(Input).first())

    def values(self) -> dict[str, str]:
        """What is typed in each field, stripped."""
        return {f.id: self.query_one(f"#field-{f.id}", Input).value.strip() for f in self.fields}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter moves to the next field, and submits from the last one."""
        inputs = list(self.query(Input))
        index = inputs.index(event.input)
        if index + 1 < len(inputs):
            self.set_focus(inputs[index + 1])
        else:
            self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Submit or Cancel."""
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_cancel()

    def action_submit(self) -> None:
        """Check the values; close with the result, or say what is wrong."""
        try:
            result = self.submit(self.values())
        except BerthError as exc:
            self.query_one("#form-error", Label).update(f"[$error]{exc}[/]")
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        """Close without a result."""
        self.dismiss(None)
