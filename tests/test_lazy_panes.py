"""The console builds a pane the first time it is wanted (issue 16: start-up): a pane never shown
is still reached, with its verbs and keys, from every place the user asks for it."""

from test_read_only import toasts, until
from textual.command import CommandPalette
from textual.widgets import OptionList

from backends.config import Config
from tui.app import BerthApp
from tui.screens.form import FormScreen
from tui.screens.help import HelpScreen, HelpTable

SIZE = (160, 40)


def focused_in(app: BerthApp, table_id: str) -> bool:
    """Whether the keys go to the table `table_id`."""
    focused = app.focused
    return focused is not None and app.main_screen.query_one(f"#{table_id}") in focused.ancestors_with_self


def built(app: BerthApp) -> list[str]:
    """The ids of the panes whose tab holds a widget."""
    return [tab.id or "" for tab in app.main_screen.query("#panes TabPane") if tab.children]


async def test_a_pane_never_shown_is_built_by_its_key_the_command_line_and_the_palette(
    offline_config: Config,
) -> None:
    app = BerthApp(offline_config)
    toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert built(app) == ["containers"]
        assert "Wasm tasks" in app.export_screenshot().replace("&#160;", " ")  # its tab is there

        # `:members` shows the Members pane and focuses its table, as it did when built at start.
        await pilot.press("colon", *"members", "enter")
        await until(pilot, lambda: focused_in(app, "members-table"), "the members table focused")
        assert app.main_screen.active_pane == "members"
        assert built(app) == ["containers", "members"]

        # The palette, opened from the first pane, offers the Wasm pane's verbs and runs them there.
        await pilot.press("1", "ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"wasm: New task")
        await pilot.pause(0.5)
        offered = [str(option.prompt).split("\n")[0] for option in app.screen.query_one(OptionList).options]
        assert "wasm: New task" in offered
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), "the new-task form")
        assert app.main_screen.active_pane == "wasm"
        assert built(app) == ["containers", "members", "wasm", "providers"]


async def test_help_lists_the_keys_of_panes_not_built_yet(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        table = app.screen.query_one(HelpTable)
        ids = {str(table.get_row_at(i)[1]) for i in range(table.row_count)}
        assert {"wasm.new", "members.new", "providers.drain"} <= ids
        assert built(app) == ["containers"]  # listed from the classes: nothing was built for it
