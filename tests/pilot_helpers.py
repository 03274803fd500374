"""Driving berth's forms in Pilot tests."""

from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input

from tui.screens.form import FormScreen


async def fill_form(pilot: Pilot[None], app: App[None], **values: str) -> None:
    """Put `values` in the form on screen and submit it with Enter in its last field."""
    form = app.screen
    assert isinstance(form, FormScreen)
    for field, value in values.items():
        form.query_one(f"#field-{field}", Input).value = value
    form.set_focus(form.query(Input).last())
    await pilot.press("enter")
    await pilot.pause()
