"""Layout snapshots of the main screen and help (regenerate: `pytest --snapshot-update`)."""

from typing import Any

from textual.pilot import Pilot

from backends.config import Config
from tui.app import BerthApp
from tui.widgets.host_header import HostHeader


async def _settle(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, BerthApp)
    header = app.main_screen.query_one(HostHeader)
    for _ in range(50):
        if header.state is not None:
            break
        await pilot.pause(0.05)
    await pilot.pause()


def test_main_screen(snap_compare: Any, offline_config: Config) -> None:
    assert snap_compare(BerthApp(offline_config), terminal_size=(120, 32), run_before=_settle)


def test_help_screen(snap_compare: Any, offline_config: Config) -> None:
    async def open_help(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(BerthApp(offline_config), terminal_size=(120, 40), run_before=open_help)
