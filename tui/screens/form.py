"""A small modal form: labelled fields, checked by their input kind and the caller before it closes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, TextArea

from backends.errors import BerthError, Invalid
from backends.units import Grammar, field_error
from tui.verbs import bindings


@dataclass(frozen=True)
class Field:
    """One input of a form: its id (the key of the submitted values), label and hint.

    A field of one input kind names its `grammar` (backends.units and the parse_* modules): the
    empty field shows the grammar's examples, and what is typed is read by its parser before the
    caller sees it, a refusal naming the field (an empty one too when it is `required`; else
    empty means none). `lines` > 1 makes room for a pasted block (keys): pasted newlines stay,
    Enter still moves on.
    """

    id: str
    label: str
    placeholder: str = ""
    value: str = ""
    grammar: Grammar[Any] | None = None
    required: bool = False
    lines: int = 1

    @property
    def hint(self) -> str:
        """What the empty field shows: its grammar's examples, else the placeholder."""
        return self.grammar.example if self.grammar else self.placeholder

    @property
    def name(self) -> str:
        """How an error names the field: its label, without what the parenthesis adds."""
        return self.label.split(" (", 1)[0]


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
            yield Label(self.title_text, classes="dialog-title", markup=False)
            # Only the fields scroll: the title, the error and the buttons stay on show.
            with VerticalScroll(classes="form-fields"):
                for field in self.fields:
                    yield Label(field.label, markup=False)
                    if field.lines > 1:
                        area = TextArea(
                            field.value, placeholder=field.hint, id=f"field-{field.id}", compact=True
                        )
                        area.styles.height = field.lines
                        yield area
                    else:
                        yield Input(field.value, placeholder=field.hint, id=f"field-{field.id}", compact=True)
            yield Label("", id="form-error")
            with Horizontal(classes="buttons"):
                yield Button(self.verb, variant="primary", id="submit")
                yield Button("Cancel", id="cancel")
        yield Footer()

    def inputs(self) -> list[Input | TextArea]:
        """The fields' widgets, in order."""
        return [w for f in self.fields if isinstance(w := self.query_one(f"#field-{f.id}"), Input | TextArea)]

    def on_mount(self) -> None:
        """Start in the first field."""
        self.set_focus(self.inputs()[0])
        self.call_after_refresh(self._fit)

    def on_resize(self) -> None:
        """The fields get what room the terminal leaves them."""
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        """Let the fields take the dialog's room (80 % of the screen above the footer) less what
        stays on show around them: its title, error, buttons, padding and border; past that they
        scroll."""
        dialog = self.query_one(".dialog")
        kept = 0
        for part in (".dialog-title", "#form-error", ".buttons"):
            widget = self.query_one(part)
            kept += widget.outer_size.height + widget.styles.margin.top + widget.styles.margin.bottom
        frame = dialog.outer_size.height - dialog.content_size.height
        room = (self.size.height - self.query_one(Footer).outer_size.height) * 8 // 10 - frame - kept
        self.query_one(".form-fields").styles.max_height = max(room, 3)

    def values(self) -> dict[str, str]:
        """What is typed in each field, stripped."""
        return {
            f.id: (widget.value if isinstance(widget, Input) else widget.text).strip()
            for f, widget in zip(self.fields, self.inputs(), strict=True)
        }

    def action_enter(self) -> None:
        """Enter moves to the next field and submits from the last one; on a button, presses it."""
        focused = self.focused
        if isinstance(focused, Button):
            focused.press()
            return
        inputs = self.inputs()
        index = inputs.index(focused) if focused in inputs else len(inputs)
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
        waiting = [field for field in self.inputs() if field.message_queue_size]
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
        values = self.values()
        try:
            for field in self.fields:
                if field.grammar and (values[field.id] or field.required):
                    try:
                        field.grammar.parse(values[field.id])
                    except Invalid as exc:
                        raise field_error(field.name, exc) from None
            result = self.submit(values)
        except BerthError as exc:
            # What was typed may hold [ ]: shown as text, not as markup.
            self.query_one("#form-error", Label).update(f"[$error]{escape(str(exc))}[/]")
            self.call_after_refresh(self._fit)  # once it is as tall as its sentence
            return
        self._answered = True
        self.dismiss(result)

    def action_cancel(self) -> None:
        """Close without a result."""
        self.dismiss(None)
