"""The user keymap check: unknown ids, clashes and destructive verbs on motion keys are reported
by name and left out; good entries are applied (a remapped key works, its default no longer)."""

from pathlib import Path

from pilot_helpers import footer_text
from test_app import SIZE, toasts
from test_cli import run_berth
from textual.command import CommandPalette

from backends.config import Config, load_config
from tui.app import BerthApp
from tui.keymap import binding_sections, check_keymap

SECTIONS = binding_sections()
KEYMAP_FILE = """[ui.keymap]
"containers.logs" = "[link=x]"
"containers.top" = "ctrl+p"
"containers.stop" = "x"
"""
"""A keymap as a newcomer wrote it: a markup tag for a key, the palette's key, and one good entry."""
WRONG_KEY = (
    "keymap: 'containers.logs' is given '[link=x]', which is not a key (a character like 'x', or a "
    "name like 'question_mark', 'f5' or 'ctrl+x'); it keeps its default key."
)
PALETTE_KEY = (
    "keymap: 'containers.top' would share 'ctrl+p' with the command palette, which the app takes "
    "before any pane; 'containers.top' keeps its default key."
)


def test_every_binding_has_an_id_and_no_destructive_default_sits_on_a_motion_key() -> None:
    from tui.keymap import MOTION_KEYS, is_destructive

    for section in SECTIONS:
        for binding in section.bindings:
            assert binding.id, f"{section.name}: {binding.key} -> {binding.action} has no id"
            if is_destructive(binding.id):
                assert not set(binding.key.split(",")) & MOTION_KEYS, binding.id


def test_check_keymap_names_each_bad_entry_and_keeps_the_good_ones() -> None:
    usable, problems = check_keymap(
        {
            "containers.restart": "R",  # free in its section: kept
            "no.such.binding": "x",
            "containers.remove": "ctrl+d",  # destructive on a motion key
            "containers.stop": "r",  # the default key of containers.restart...
            "members.delete": "q",  # app.quit's key: clashes with a global binding
            "wasm.new": "",
            "containers.down": "G",  # compose down removes the project's containers
            "providers.unpair": "k",  # revokes keys
        },
        SECTIONS,
    )
    assert usable == {"containers.restart": "R", "containers.stop": "r"}
    text = "\n".join(problems)
    assert "'no.such.binding'" in text and "no binding has the id" in text
    assert "'containers.remove' destroys something and may not sit on 'ctrl+d'" in text
    assert "'members.delete' would share 'q' with 'app.quit'" in text
    assert "'wasm.new' is given no key" in text
    assert "'containers.down' destroys something and may not sit on 'G'" in text
    assert "'providers.unpair' destroys something and may not sit on 'k'" in text
    # containers.stop on 'r' is fine once containers.restart moved to 'R'.
    assert not any("containers.stop" in p for p in problems)


def test_check_keymap_clash_inside_a_section() -> None:
    usable, problems = check_keymap({"containers.stop": "r"}, SECTIONS)
    assert usable == {}
    assert problems == [
        "keymap: 'containers.stop' would share 'r' with 'containers.restart'; "
        "'containers.stop' keeps its default key."
    ]


async def test_a_skipped_entry_is_said_at_start_and_the_rest_applies(offline_config: Config) -> None:
    offline_config.ui.keymap = {"app.quit": "ctrl+q", "containers.remove": "j"}
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert any("'containers.remove' destroys something and may not sit on 'j'" in t for t in toasts(app))
        assert app.keymap == {"app.quit": "ctrl+q"}
        await pilot.press("q")  # the default no longer quits
        await pilot.pause()
        assert app.is_running
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert not app.is_running


async def test_a_key_textual_does_not_know_or_the_palette_key_is_refused_from_the_config_file(
    offline_config: Config, tmp_path: Path
) -> None:
    """`[link=x]` is no key (the footer showed it as one); ctrl+p is the command palette's, which
    Textual takes before any pane (Top could never be reached). Both keep their default keys."""
    path = tmp_path / "config.toml"
    path.write_text(KEYMAP_FILE)
    config = load_config(path)
    config.hosts = offline_config.hosts
    app = BerthApp(config)
    async with app.run_test(size=(150, 36)) as pilot:
        await pilot.pause()
        said = toasts(app)
        assert any(WRONG_KEY in t for t in said), said
        assert any(PALETTE_KEY in t for t in said), said
        assert app.keymap == {"containers.stop": "x"}
        shown = footer_text(app)
        assert "[link=x]" not in shown and "link" not in shown
        assert "l Logs" in shown and "t Top" in shown and "x Stop" in shown
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)


def test_config_check_refuses_a_key_textual_does_not_know_and_the_palette_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(KEYMAP_FILE)
    result = run_berth("--config", str(path), "config", "check")
    assert result.returncode == 2
    assert WRONG_KEY in result.stderr and PALETTE_KEY in result.stderr
    assert "containers.stop" not in result.stderr


def test_key_names_are_textuals() -> None:
    from tui.keymap import is_key_name

    for good in ("x", "G", "?", "question_mark", "dollar_sign", "slash", "minus", "f5", "escape", "space",
                 "ctrl+p", "ctrl+shift+up", "alt+x", "super+x", "shift+tab", "ctrl+@"):
        assert is_key_name(good), good
    # Not keys, or names Textual never gives a press: it calls them `slash`, `a` and `escape`.
    for bad in ("[link=x]", "link=x", "ctrl+", "foo+a", "<any>", "solidus", "latin_small_letter_a", "Escape"):
        assert not is_key_name(bad), bad
