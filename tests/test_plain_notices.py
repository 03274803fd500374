"""Notices show what they quote as it was written (issue 16, found by a newcomer): a name, a key or
an engine's answer holding `[link=…]` or `[red]…[/red]` was read as Textual markup, which changed
the text or raised and ended the console."""

import dataclasses

from textual.widgets._toast import Toast

from backends.config import Config
from tui.app import BerthApp


def shown_notices(app: BerthApp) -> str:
    """The text of the notices on screen, as drawn."""
    return "\n".join(str(toast.render()) for toast in app.screen.query(Toast))


async def test_a_keymap_id_written_as_markup_is_named_as_written(offline_config: Config) -> None:
    ui = dataclasses.replace(
        offline_config.ui, keymap={"[link=http://127.0.0.1/]x": "z", "[red]y[/red]": "w"}
    )
    app = BerthApp(dataclasses.replace(offline_config, ui=ui))
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await pilot.pause()
        shown = shown_notices(app)
        assert "no binding has the id '[link=http://127.0.0.1/]x'" in shown, shown
        assert "no binding has the id '[red]y[/red]'" in shown, shown
        assert app.is_running
