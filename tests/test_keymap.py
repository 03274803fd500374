"""The user keymap check: unknown ids, clashes and destructive verbs on motion keys are reported
by name and left out; good entries are applied (a remapped key works, its default no longer)."""

from test_app import SIZE, toasts

from backends.config import Config
from tui.app import BerthApp
from tui.keymap import binding_sections, check_keymap

SECTIONS = binding_sections()


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
