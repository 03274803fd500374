"""A small modal form: labelled fields, checked by the caller before it closes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from backends.errors import BerthError
from tui.verbs import bindings


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

    BINDINGS = bindings("form")

    def __init__(
        self, title: str, fields: Sequence[Field], submit: Callable[[dict[str, str]], Any], verb: str = "OK"
    ) -> None:
        super().__init__(classes="form")
        self.title_text = title
        self.fields = list(fields)
        self.submit = submit
        self.verb = verb
        self._answered = False

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

    def action_enter(self) -> None:
        """Enter moves to the next field and submits from the last one; on a button, presses it."""
        focused = self.focused
        if isinstance(focused, Button):
            focused.press()
            return
        inputs = list(self.query(Input))
        index = inputs.index(focused) if isinstance(focused, Input) and focused in inputs else len(inputs)
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
        """Check the values (once the fields have taken every key typed into them); close with
        the result, or say what is wrong."""
        # Each field handles its keys in a queue of its own: a burst's last letters may still
        # wait there when its Enter arrives, and the values would be read without them.
        waiting = [field for field in self.query(Input) if field.message_queue_size]
        left = len(waiting)

        def taken() -> None:
            nonlocal left
            left -= 1
            if left == 0:
                self._check_and_close()

        for field in waiting:
            if not field.call_later(taken):  # runs after the keys already in that field's queue
                taken()
        if not waiting:
            self._check_and_close()

    def _check_and_close(self) -> None:
        if self._answered or not self.is_attached:
            return  # a second Enter of the same burst
        try:
            result = self.submit(self.values())
        except BerthError as exc:
            self.query_one("#form-error", Label).update(f"[$error]{exc}[/]")
            return
        self._answered = True
        self.dismiss(result)

    def action_cancel(self) -> None:
        """Close without a result."""
        self.dismiss(None)
