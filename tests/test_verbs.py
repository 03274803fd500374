"""The verb registry (tui/verbs.py) is the one home of a verb's facts: every binding of every
class of the console is in it with a sentence of help, and a verb added to it alone (one entry,
one action method) is refused read-only, offered by the palette, listed by `?` with its sentence
and checked by the keymap, with no other list to update."""

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from engines.dockerd import DockerEngine
from test_containers_pane import make_app, pane
from test_read_only import footer_ids, toasts, until
from textual.binding import Binding
from textual.command import CommandPalette
from textual.dom import DOMNode
from textual.pilot import Pilot
from textual.widgets import OptionList

import tui
import tui.panes.wasm
from backends.config import Config
from tui import verbs
from tui.app import BerthApp
from tui.keymap import binding_sections, check_keymap
from tui.palette import pane_commands
from tui.panes.wasm import WasmPane
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen, HelpTable
from tui.verbs import CONSOLE, VERBS, Registry, Verb, bindings

SIZE = (150, 40)
PURGE = Verb(
    "wasm.purge",
    "X",
    "purge",
    "Purge",
    verbs.WHOLE,
    CONSOLE,
    destroys=True,
    help="Forget every finished task of the history at once.",
)
"""A verb the console does not have, declared the way every verb is (`owner` is set below)."""


def console_classes() -> Iterator[type[DOMNode]]:
    """Every class defined in a `tui` module that declares key bindings of its own, found by
    importing each module and reading what it defines (not by the keymap's own walk)."""
    for module_info in pkgutil.walk_packages(tui.__path__, "tui."):
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, DOMNode)
                and value.__module__ == module.__name__
                and value.__dict__.get("BINDINGS")
            ):
                yield value


def test_every_binding_of_every_class_is_a_verb_of_the_registry_with_help() -> None:
    classes = set(console_classes())
    # Screens, dialogs, panes and widgets alike: the walk found them all (a sample of each kind).
    names = {cls.__name__ for cls in classes}
    assert {"BerthApp", "MainScreen", "ContainersPane", "KeysScreen", "HelpScreen", "LogView"} <= names
    assert {"ConfirmScreen", "FormScreen", "PickerScreen", "CommandLine", "ResourceTable"} <= names
    sections = {section.owner for section in binding_sections()}
    assert classes == sections, "the keymap's walk and this one disagree"

    bound = set()
    for cls in classes:
        for binding in cls.__dict__["BINDINGS"]:
            assert isinstance(binding, Binding), f"{cls.__name__}: {binding!r} is not a Binding"
            verb = verbs.find(binding.id)
            assert verb is not None, f"{cls.__name__}: {binding.key} -> {binding.action} is not a verb"
            assert verb.help.strip(), f"{verb.id} has no help text"
            labels = {verb.label, *dict(verb.also).values()}  # a view binding it too labels it its way
            assert (binding.key, binding.action) == (verb.keys, verb.action) and binding.description in labels
            assert (binding.show, binding.priority) == (verb.show, verb.priority), verb.id
            bound.add(verb.id)
    # And no verb is declared that no class binds (an owner name misspelt would leave it unbound).
    assert bound == {verb.id for verb in verbs.all_verbs()}


@pytest.fixture
def purging_pane(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[WasmPane]]:
    """The registry with the new verb, and a Wasm tasks pane that owns it (its BINDINGS from the
    registry, and the verb's one action method), shown by the main screen in place of the usual."""
    monkeypatch.setattr(verbs, "REGISTRY", Registry((*VERBS, replace(PURGE, owner="purging"))))

    class PurgingWasmPane(WasmPane):
        BINDINGS = bindings("purging")
        purged = 0

        def action_purge(self) -> None:
            type(self).purged += 1
            self.notify("Purged the history.")

    monkeypatch.setattr(tui.panes.wasm, "WasmPane", PurgingWasmPane)
    binding_sections.cache_clear()  # the walk finds the new class
    yield PurgingWasmPane
    binding_sections.cache_clear()


async def press_until(pilot: Pilot[None], key: str, check: Callable[[], bool], tries: int = 200) -> None:
    for _ in range(tries):
        if check():
            return
        await pilot.press(key)
    raise AssertionError(f"pressed {key} {tries} times")


async def test_a_verb_added_to_the_registry_is_refused_read_only(
    offline_config: Config, purging_pane: type[WasmPane]
) -> None:
    app = BerthApp(offline_config, read_only=True)
    toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert isinstance(app.main_screen.query_one(WasmPane), purging_pane)
        assert "wasm.purge" not in footer_ids(app)  # hidden from the footer read-only
        await pilot.press("X")
        await until(pilot, lambda: any("nothing was changed" in t for t in toasts(app)), "the refusal")
        assert "berth runs read-only (--read-only): nothing was changed." in toasts(app)
        assert purging_pane.purged == 0


async def test_a_verb_added_to_the_registry_is_in_the_palette_and_help(
    offline_config: Config, purging_pane: type[WasmPane]
) -> None:
    offline_config.ui.keymap = {"wasm.purge": "Z"}  # the keymap's catalogue knows it
    app = BerthApp(offline_config)
    toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert "wasm.purge" in footer_ids(app)
        assert app.keymap == {"wasm.purge": "Z"}

        # The palette offers it once (a verb on the whole pane), with its sentence, and runs it.
        await pilot.press("1", "ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"wasm: Purge")
        await pilot.pause(0.5)
        palette = app.screen
        offered = [str(option.prompt) for option in palette.query_one(OptionList).options]
        assert "wasm: Purge\nForget every finished task of the history at once." in offered
        await pilot.press("enter")
        await until(pilot, lambda: purging_pane.purged == 1, "the palette's purge")
        assert app.main_screen.active_pane == "wasm"

        # `?` lists it under the Wasm pane's section with its key as remapped, and says what it does.
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        table = app.screen.query_one(HelpTable)
        ids = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        row = ids.index("wasm.purge")
        assert str(table.get_row_at(row)[0]).strip() == "Z" and str(table.get_row_at(row)[2]) == "Purge"
        heading = max(i for i in range(row) if not ids[i])
        assert str(table.get_row_at(heading)[0]) == "wasm"
        dialog = app.screen.query_one(".dialog")
        assert not str(dialog.border_subtitle)  # the first row is a heading: nothing to say
        await press_until(pilot, "down", lambda: table.cursor_row == row)
        await pilot.pause()
        assert str(dialog.border_subtitle) == "Forget every finished task of the history at once."
        shown = app.export_screenshot().replace("&#160;", " ")  # what the terminal shows
        assert "Forget every finished task of the history at once." in shown

        await pilot.press("escape", "Z")  # the key as remapped runs it
        await until(pilot, lambda: purging_pane.purged == 2, "the remapped key's purge")


def test_the_read_only_list_and_the_keymap_check_read_the_registry(purging_pane: type[WasmPane]) -> None:
    from tui.keymap import is_destructive
    from tui.read_only import state_changing

    assert state_changing()["wasm.purge"] == CONSOLE and is_destructive("wasm.purge")
    usable, problems = check_keymap({"wasm.purge": "j"}, binding_sections())
    assert not usable
    assert problems == [
        "keymap: 'wasm.purge' destroys something and may not sit on 'j', a key used to move around."
    ]


async def test_the_palette_offers_the_verbs_of_the_view_on_show_in_a_pane(
    dockerd: DockerEngine, docker_busybox: str, tmp_path: Path
) -> None:
    """The images view is a widget of its own in the Containers pane, owning its verbs: the
    palette offers them (under the pane's name) while it is on show, and not otherwise."""
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")
        texts = [c.text for c in pane_commands(app)]
        assert not any(t.startswith(("containers: Move to host", "containers: Prune")) for t in texts)
        await pilot.press("v")
        images = pane(app).images_table
        await until(pilot, lambda: docker_busybox in images.rows, what="the image list")
        name = str(images.rows[docker_busybox].cells["name"])
        texts = [c.text for c in pane_commands(app)]
        assert f"containers: Move to host {name}" in texts and "containers: Prune dangling" in texts
        assert not any(t.startswith("containers: Logs") for t in texts)

        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"containers: Prune dangling")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the prune question")
