"""Driving berth's forms in Pilot tests."""

from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from tui.screens.form import FormScreen


async def fill_form(pilot: Pilot[None], app: App[None], **values: str) -> None:
    """Put `values` in the form on screen and submit it with Enter in its last field."""
    form = app.screen
    assert isinstance(form, FormScreen)
    for field, value in values.items():
        widget = form.query_one(f"#field-{field}")
        if isinstance(widget, TextArea):  # a field for pasted blocks
            widget.text = value
        else:
            assert isinstance(widget, Input)
            widget.value = value
    form.set_focus(form.query(Input).last())
    await pilot.press("enter")
    await pilot.pause()


def log_lines(app: App[None]) -> list[str]:
    """The text of every line the log view on screen holds."""
    from tui.widgets.log_view import LogView

    buffer = app.screen.query_one(LogView).buffer
    return [buffer[i].text for i in range(len(buffer))]


def footer_text(app: App[None]) -> str:
    """The keys of the footer drawn on the terminal's last line, as they read (`l Logs s Stop …`):
    the top screen's, or, where a dialog has none, the one of the screen it is drawn over."""
    from textual.widgets import Footer

    for screen in reversed(app.screen_stack):
        widget, _ = screen.get_widget_at(1, app.size.height - 1)
        footers = [node for node in widget.ancestors_with_self if isinstance(node, Footer)]
        if footers:
            return " ".join(str(key.render()).strip() for key in footers[0].query("FooterKey"))
    raise AssertionError("no footer on the last line")
