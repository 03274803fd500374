"""The `:` command line's parser (pure logic)."""

import pytest

from backends.errors import Invalid
from tui.commands import Command, completions, parse_command


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":host web-1", Command("host", ("web-1",))),
        ("host", Command("host")),
        (":ctx  db ", Command("host", ("db",))),
        (":theme berth-light", Command("theme", ("berth-light",))),
        (":q", Command("quit")),
        (":q!", Command("quit")),
        (":ctr", Command("pane.containers")),
        (":MEM", Command("pane.members")),
        (":prov", Command("pane.providers")),
        (":wasm", Command("pane.wasm")),
    ],
)
def test_parse(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [(":", "Empty command"), (":frobnicate", "Unknown command ':frobnicate'"), (":q now", "at most 0")],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        parse_command(text)


def test_completions_cover_every_alias() -> None:
    words = completions()
    assert "host" in words and "ctr" in words and "q" in words
