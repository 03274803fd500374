"""The "Add host" dialog: name, URL, identity and jump host, checked before it closes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from backends.config import Config, HostConfig, add_host
from backends.errors import BerthError

FIELDS = (
    ("name", "Name", "web-1"),
    ("url", "URL", "ssh://user@host[:port]  or  local"),
    ("identity", "Identity file (optional)", "~/.ssh/id_ed25519"),
    ("jump", "Jump host (optional)", "an inventory name or ssh://user@bastion"),
)


class AddHostScreen(ModalScreen[Config | None]):
    """Ask for a new host; returns the config with it added (not yet saved), or None on Escape.

    A name already in use or a malformed URL is shown under the fields and the dialog stays open.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="add_host.cancel")]

    def __init__(self, config: Config) -> None:
        super().__init__(classes="add-host")
        self.config = config

    def compose(self) -> ComposeResult:
        """One labelled input per field, the error line and the buttons."""
        with Vertical(classes="dialog"):
            yield Label("Add host", classes="dialog-title")
            for field_id, label, placeholder in FIELDS:
                yield Label(label)
                yield Input(placeholder=placeholder, id=f"host-{field_id}")
            yield Label("", id="add-host-error")
            with Horizontal(classes="buttons"):
                yield Button("Add", variant="primary", id="add")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Start in the name field."""
        self.set_focus(self.query_one("#host-name", Input))

    def _value(self, field_id: str) -> str:
        return self.query_one(f"#host-{field_id}", Input).value.strip()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter moves to the next field, and adds from the last one."""
        inputs = list(self.query(Input))
        index = inputs.index(event.input)
        if index + 1 < len(inputs):
            self.set_focus(inputs[index + 1])
        else:
            self.action_add()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Add or Cancel."""
        if event.button.id == "add":
            self.action_add()
        else:
            self.action_cancel()

    def action_add(self) -> None:
        """Check the fields; close with the new config, or say what is wrong."""
        host = HostConfig(
            self._value("name"),
            self._value("url") or "local",
            identity=self._value("identity") or None,
            jump=self._value("jump") or None,
        )
        try:
            updated = add_host(self.config, host)
        except BerthError as exc:
            self.query_one("#add-host-error", Label).update(f"[$error]{exc}[/]")
            return
        self.dismiss(updated)

    def action_cancel(self) -> None:
        """Close without adding."""
        self.dismiss(None)
