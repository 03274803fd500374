"""Notices show what they quote as it was written (issue 16, found by a newcomer): a name, a key or
an engine's answer holding `[link=…]` or `[red]…[/red]` was read as Textual markup, which changed
the text or raised and ended the console."""

import dataclasses
import shutil
from pathlib import Path

from pilot_helpers import fill_form
from test_containers_pane import until
from test_input_forms import open_new_task_form, wrapped_text
from test_wasm_pane import wasm_app
from textual.widgets._toast import Toast

from backends.config import Config
from tui.app import BerthApp
from tui.panes.wasm import WasmPane
from tui.screens.confirm import ConfirmScreen
from tui.screens.logs import LogScreen


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


async def test_a_question_and_its_targets_show_a_name_written_as_markup(
    wasm_programs: dict[str, Path], tmp_path: Path
) -> None:
    """A task whose module file is named like markup: the drop question names it as written (the
    confirm dialog read its targets as markup and raised: a member, key or provider named so did)."""
    module = tmp_path / "[link=x]a[b]c[red].wasm"  # (a file name holds no /)
    shutil.copy(wasm_programs["hello"], module)
    app = wasm_app(tmp_path)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await open_new_task_form(pilot, app)
        await fill_form(pilot, app, module=str(module))
        await until(pilot, lambda: isinstance(app.screen, LogScreen), timeout=30, what=shown_notices(app))
        await pilot.press("escape")
        wasm = app.query_one(WasmPane)
        (task,) = wasm.records
        await until(pilot, lambda: wasm.records[task].state == "done", timeout=30)
        assert wasm.table.move_cursor_to(task)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        targets = wrapped_text(app.screen.query_one(".targets"))
        assert module.name in targets, targets
        await pilot.press("y")
        await until(pilot, lambda: task not in wasm.table.rows, what="the dropped row")
        assert app.is_running


def test_a_theme_named_like_markup_is_refused_by_name(tmp_path: Path) -> None:
    from themes.loader import load_themes

    (tmp_path / "odd.toml").write_text('name = "[link=http://127.0.0.1/]t"\nprimary = "#336699"\n')
    (tmp_path / "fine.toml").write_text('name = "my-theme_2"\nprimary = "#336699"\n')
    found = load_themes(tmp_path)
    assert [t.name for t in found.themes] == ["my-theme_2"], found
    assert any("odd.toml: name: expected letters, digits" in p for p in found.errors), found.errors
