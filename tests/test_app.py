"""The console frame driven as a person would, with Textual's Pilot."""

import asyncio
from pathlib import Path

from textual.widgets import Input, TabbedContent

from backends.config import Config, load_config
from tui.app import BerthApp
from tui.panes import PANES
from tui.screens.form import FormScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.picker import PickerScreen
from tui.widgets.host_header import HostHeader

SIZE = (120, 36)


def toasts(app: BerthApp) -> list[str]:
    # Textual keeps notifications in a private list; its own tests read it the same way.
    return [f"{n.title} {n.message}" for n in app._notifications]


async def saved(app: BerthApp) -> None:
    """Wait for the config-saving workers to end (the panes' live workers never do)."""
    for _ in range(200):
        if all(w.is_finished for w in app.workers if w.group == "save-config"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the config was never saved")


def focused_in(app: BerthApp, pane_id: str) -> bool:
    """Whether focus is on pane `pane_id` or inside it (built panes focus their table)."""
    return app.focused is not None and app.main_screen.pane_widget(pane_id) in app.focused.ancestors_with_self


async def wait_for_probe(app: BerthApp, pilot: object) -> None:
    header = app.main_screen.query_one(HostHeader)
    for _ in range(50):
        if header.state is not None and header.state.name == app.current_host.name:
            return
        await pilot.pause(0.05)  # type: ignore[attr-defined]
    raise AssertionError("the host probe never reported")


async def test_starts_on_the_first_pane_with_host_state(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_probe(app, pilot)
        assert isinstance(app.screen, MainScreen)
        assert app.main_screen.active_pane == "containers"
        assert focused_in(app, "containers")
        header = app.main_screen.query_one(HostHeader)
        assert header.state is not None
        assert header.state.state == "offline"
        assert [e.state for e in header.state.engines] == ["absent", "absent"]
        rendered = header.render()
        assert "local" in rendered and "docker absent" in rendered


async def test_number_keys_and_tab_switch_panes(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        tabs = app.query_one(TabbedContent)
        for spec in reversed(PANES):
            await pilot.press(spec.key)
            assert tabs.active == spec.id
            assert focused_in(app, spec.id)
        await pilot.press("4", "tab")
        assert tabs.active == "containers"  # wraps around
        await pilot.press("shift+tab")
        assert tabs.active == "providers"
        await pilot.press("shift+tab", "shift+tab")
        assert tabs.active == "members"


async def test_help_lists_every_binding(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        ids = {row.binding_id for row in app.screen.rows}
        expected = {b.id for b in BerthApp.BINDINGS} | {b.id for b in MainScreen.BINDINGS}
        assert expected <= ids
        keys = {row.keys for row in app.screen.rows}
        assert {"?", ":", "q", "ctrl+p", "tab", "1", "4"} <= keys
        assert any(row.keys.startswith(":host") for row in app.screen.rows)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_theme_command_switches_and_saves(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "berth-dark"
        await pilot.press("colon", *"theme berth-light", "enter")
        await saved(app)
        assert app.theme == "berth-light"
        assert offline_config.path is not None
        assert load_config(offline_config.path).ui.theme == "berth-light"
        await pilot.press("colon", *"theme no-such-theme", "enter")
        await pilot.pause()
        assert app.theme == "berth-light"
        assert any("No theme called 'no-such-theme'" in t for t in toasts(app))


async def test_theme_save_never_overwrites_a_broken_file(offline_config: Config) -> None:
    assert offline_config.path is not None
    offline_config.path.write_text("[ui\n")  # broken after start-up, e.g. edited meanwhile
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"theme berth-amber", "enter")
        await saved(app)
        await pilot.pause()
        assert app.theme == "berth-amber"
        assert any("Not saving" in t for t in toasts(app))
    assert offline_config.path.read_text() == "[ui\n"


async def test_host_switch_by_command_and_picker(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"host web-1", "enter")
        await wait_for_probe(app, pilot)
        assert app.current_host.name == "web-1"
        header = app.main_screen.query_one(HostHeader)
        # Nothing listens there: the header names the host, says offline and why (berth retries).
        for _ in range(100):
            if "offline" in header.render():
                break
            await pilot.pause(0.05)
        assert "web-1" in header.render() and "Connection refused" in header.render()
        await pilot.press("H")
        await pilot.pause()
        assert isinstance(app.screen, PickerScreen)
        await pilot.press("up", "enter")
        await wait_for_probe(app, pilot)
        assert app.current_host.name == "local"
        await pilot.press("colon", *"host nowhere", "enter")
        await pilot.pause()
        assert app.current_host.name == "local"
        assert any("No host called 'nowhere'" in t for t in toasts(app))


async def test_command_line_escape_and_unknown_command(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", "x", "escape")
        assert focused_in(app, "containers")
        await pilot.press("colon", *"frob", "enter")
        await pilot.pause()
        assert any("Unknown command ':frob'" in t for t in toasts(app))
        await pilot.press("colon", *"mem", "enter")
        assert app.main_screen.active_pane == "members"


async def test_palette_offers_berth_commands(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"theme: berth-high", "enter")
        await saved(app)
        await pilot.pause()
        assert app.theme == "berth-high-contrast"


async def test_q_quits(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    assert not app.is_running


async def test_keymap_from_config_remaps_quit(offline_config: Config) -> None:
    offline_config.ui.keymap = {"app.quit": "ctrl+q"}
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert not app.is_running


async def test_broken_user_theme_is_one_notification(offline_config: Config, tmp_path: Path) -> None:
    themes = tmp_path / "themes"
    themes.mkdir()
    (themes / "neon.toml").write_text('name = "neon"\nprimary = "glow"\n')
    (themes / "calm.toml").write_text('name = "calm"\nprimary = "#88aa88"\n')
    app = BerthApp(offline_config, user_themes=themes)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        messages = toasts(app)
        assert len([m for m in messages if "neon.toml" in m]) == 1
        assert "calm" in app.available_themes and "neon" not in app.available_themes


async def test_add_host_dialog_checks_then_saves_the_inventory(offline_config: Config) -> None:
    assert offline_config.path is not None
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"host add", "enter")
        await pilot.pause()
        assert isinstance(app.screen, FormScreen)
        # A name already in use: the dialog says so and stays open.
        await pilot.press(*"web-1", "enter", *"ssh://ops@10.0.0.5", "enter", "enter", "enter")
        await pilot.pause()
        assert isinstance(app.screen, FormScreen)
        assert "already a host called 'web-1'" in str(app.screen.query_one("#form-error").render())
        app.screen.query_one("#field-name", Input).value = "db-1"
        app.screen.query_one("#field-identity", Input).value = "~/.ssh/db"
        await pilot.click("#submit")
        await pilot.pause()
        assert not isinstance(app.screen, FormScreen)
        for _ in range(100):
            if offline_config.path.exists():
                break
            await pilot.pause(0.05)
    saved = load_config(offline_config.path).host("db-1")
    assert saved is not None and (saved.url, saved.identity) == ("ssh://ops@10.0.0.5", "~/.ssh/db")
    assert [h.name for h in app.config.hosts] == ["local", "web-1", "db-1"]


async def test_a_click_on_a_tab_shows_its_pane(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.click("#--content-tab-wasm")
        await pilot.pause()
        assert app.main_screen.active_pane == "wasm"
        assert focused_in(app, "wasm")
