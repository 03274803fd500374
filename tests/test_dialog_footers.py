"""The footer at the bottom of the terminal lists the keys of the screen on top (issue 16, found by
a newcomer): under a dialog it showed the Members pane's keys (`n New member … d Delete`, `/
Filter`, `H Host`) that do nothing there, and nothing said that `a` adds a key in the keys dialog."""

from pathlib import Path

import pytest
from engines.lxd import LxdEngine
from pilot_helpers import footer_text
from test_members_pane import client, made, members_app, pane, wait  # noqa: F401  (fixtures)
from test_members_truth import backend, member  # noqa: F401  (fixture)
from textual.pilot import Pilot

from backends.config import Config
from backends.lxd import LxdBackend
from tui.app import BerthApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.form import FormScreen
from tui.screens.help import HelpScreen
from tui.screens.member_details import ForwardsScreen, KeysScreen, SnapshotsScreen
from tui.screens.picker import PickerScreen

SIZE = (160, 40)
PANE_KEYS = ("New member", "Filter", "Host", "Delete", "Logs", "Stop")
"""Labels of the panes' and the app's keys: none of them belongs in a dialog's footer."""


def assert_only(shown: str, *expected: str) -> None:
    """The footer lists `expected` and none of the panes' keys."""
    for label in expected:
        assert label in shown, shown
    for label in PANE_KEYS:
        assert label not in expected and label not in shown, shown


async def opened(pilot: Pilot[None], kind: type) -> None:
    for _ in range(100):
        if isinstance(pilot.app.screen, kind):
            await pilot.pause()
            return
        await pilot.pause(0.02)
    raise AssertionError(f"{kind.__name__} never opened")


async def test_help_the_host_picker_and_the_add_host_form_show_their_own_keys(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "Logs" in footer_text(app)  # the Containers pane's keys under the frame
        await pilot.press("question_mark")
        await opened(pilot, HelpScreen)
        assert_only(footer_text(app), "esc Close")
        await pilot.press("escape", "H")
        await opened(pilot, PickerScreen)
        assert_only(footer_text(app), "esc Cancel")
        await pilot.press("escape")
        await pilot.pause()
        app.action_add_host()
        await opened(pilot, FormScreen)
        assert_only(footer_text(app), "esc Cancel")
        await pilot.press("escape")
        await pilot.pause()
        assert "Logs" in footer_text(app)  # back on the frame, its keys again


@pytest.mark.engines
async def test_the_member_dialogs_show_their_own_keys(
    lxd: LxdEngine,
    backend: LxdBackend,  # noqa: F811
    made: list[str],  # noqa: F811
    tmp_path: Path,
) -> None:
    name = await member(backend, made)
    app = members_app(lxd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait(pilot, app, lambda: name in pane(app).table.rows, what="the member's row")
        assert "New member" in footer_text(app)
        assert pane(app).table.move_cursor_to(name)
        for key, screen, keys in (
            ("k", KeysScreen, ("a Add key", "d Remove key", "esc Close")),
            ("f", ForwardsScreen, ("a Add forward", "d Remove forward", "esc Close")),
            ("z", SnapshotsScreen, ("c Snapshot now", "R Restore", "d Delete", "S Schedule", "esc Close")),
        ):
            await pilot.press(key)
            await opened(pilot, screen)
            await wait(pilot, app, lambda: getattr(app.screen, "loads", 0) > 0, what="its rows")
            shown = footer_text(app)
            for label in keys:
                assert label in shown, shown
            # The dialog's table keeps its own keys (`/` filters the keys listed, not the members).
            assert "/ Filter" in shown and "New member" not in shown and "Host" not in shown, shown
            await pilot.press("escape")
            await pilot.pause()

        # A question over the pane: its own two keys.
        await pilot.press("d")
        await opened(pilot, ConfirmScreen)
        assert_only(footer_text(app), "esc Cancel", "y Confirm")
        await pilot.press("escape")
