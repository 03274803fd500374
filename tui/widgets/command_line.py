"""The `:` command line: an input at the bottom, with completion of command words."""

from __future__ import annotations

from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Input

from tui.commands import completions
from tui.verbs import bindings


class CommandLine(Input):
    """A one-line prompt for `:` commands; hidden until summoned, `escape` dismisses it."""

    BINDINGS = bindings("command_line")

    class Dismissed(Message):
        """Posted when the user leaves the command line without running anything."""

    def __init__(self) -> None:
        super().__init__(
            placeholder=":host NAME · :theme NAME · :ctr :mem :wasm :prov · :help · :q",
            suggester=SuggestFromList(completions(), case_sensitive=False),
            id="command-line",
        )

    def action_dismiss(self) -> None:
        """Clear and hide the prompt."""
        self.value = ""
        self.post_message(self.Dismissed())

    def action_complete(self) -> None:
        """Accept the suggested completion, if any (moving right at the end accepts it)."""
        self.cursor_position = len(self.value)
        self.action_cursor_right()
