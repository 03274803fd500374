"""`?`: every key binding of the console, by section, as the keymap has them now."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label
from textual.widgets.data_table import RowKey

from tui.commands import VERBS
from tui.verbs import bindings, find


@dataclass(frozen=True)
class HelpRow:
    """One line of the help table."""

    section: str
    keys: str
    description: str
    binding_id: str
    help: str = ""
    """The verb's sentence (`tui.verbs`), shown while its row is highlighted."""


def binding_rows(section: str, bindings: list[Binding], keymap: dict[str, str]) -> list[HelpRow]:
    """Help rows for `bindings`, with keys as remapped by `keymap` (binding id -> keys) and each
    verb's sentence from the registry."""
    rows = []
    for binding in bindings:
        keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
        shown = ", ".join(binding_key_display(k) for k in keys.split(","))
        verb = find(binding.id)
        description = binding.description or binding.action
        rows.append(HelpRow(section, shown, description, binding.id or "", verb.help if verb else ""))
    return rows


_KEY_NAMES = {"escape": "escape"}
"""Names said in full where Textual's footer abbreviates (`esc`): help has the room."""


def binding_key_display(key: str) -> str:
    """How a Textual key name reads to a person (`question_mark` -> `?`, `left_square_bracket`
    -> `[`), as the footer writes it."""
    return _KEY_NAMES.get(key.strip(), format_key(key.strip()))


def command_rows() -> list[HelpRow]:
    """One help row per `:` command, with its aliases."""
    return [
        HelpRow(":commands", " ".join(f":{w}" for w in words), description, "")
        for words, description in VERBS.values()
    ]


class HelpTable(DataTable[object]):
    """The help table: Home and End go to the first and last row (a DataTable's scroll sideways,
    which on a narrow terminal hides the keys column instead of showing the end of the list)."""

    BINDINGS = bindings("help.table")


class HelpScreen(ModalScreen[None]):
    """A table of every binding and `:` command, and in its lower edge the sentence of the verb
    on the highlighted row; `escape`, `q` or `?` closes it."""

    BINDINGS = bindings("help")

    def __init__(self, rows: list[HelpRow]) -> None:
        super().__init__(classes="help")
        self.rows = rows
        self.sentences: dict[RowKey, str] = {}
        """Table row -> the sentence shown while it is highlighted."""

    def compose(self) -> ComposeResult:
        """The title and the table."""
        with Vertical(classes="dialog wide"):
            yield Label("Keys and commands", classes="dialog-title")
            yield HelpTable(cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        """Fill the table."""
        table = self.query_one(HelpTable)
        # The id before the description: ids are short and needed whole (for the keymap); on a
        # narrow terminal a description may lose its end instead.
        table.add_columns("Keys", "Binding id", "Does")
        section = None
        for row in self.rows:
            if row.section != section:
                # A heading line per section keeps the three columns wide enough for 80 columns.
                section = row.section
                table.add_row(Text(section, style="bold italic"), "", "")
            key = table.add_row(Text("  " + row.keys), row.binding_id, row.description)
            self.sentences[key] = row.help
        table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Say what the highlighted row's verb does."""
        # In the dialog's lower edge: a line of its own would take a row from the table whenever
        # it appeared, under a cursor paging towards the end.
        self.query_one(".dialog").border_subtitle = Text(self.sentences.get(event.row_key, ""))

    def action_close(self) -> None:
        """Back to where you were."""
        self.dismiss(None)
