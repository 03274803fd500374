"""Every key binding of the console by section, and the check of a user keymap against them.

`[ui] keymap` maps binding ids to keys (Textual's `App.set_keymap`). At start-up each entry is
checked: an unknown id, a key taken by another binding of the same section (or a global one), or
a destructive verb put on a key vim users hit to move (`j`, `ctrl+d`…) is reported by name and
left out, so the defaults stay predictable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from textual.binding import Binding

from tui.panes.containers import ContainersPane
from tui.panes.members import MembersPane
from tui.panes.providers import ProvidersPane
from tui.panes.wasm import WasmPane
from tui.screens.audit import AuditScreen
from tui.screens.logs import LogScreen
from tui.screens.main import MainScreen
from tui.screens.member_details import ForwardsScreen, KeysScreen, SnapshotsScreen
from tui.widgets.log_view import LogView
from tui.widgets.resource_table import ResourceTable

# fmt: off
MOTION_KEYS = frozenset((
    "h", "j", "k", "l", "w", "b", "e", "g", "G", "0", "n", "N",
    "dollar_sign", "left_curly_bracket", "right_curly_bracket",
    "ctrl+d", "ctrl+u", "ctrl+f", "ctrl+b", "ctrl+e", "ctrl+y", "ctrl+n", "ctrl+p",
    "up", "down", "left", "right", "pageup", "pagedown", "home", "end",
))
# fmt: on
"""Keys vim and less users press to move around: no destructive verb may sit on one."""
DESTRUCTIVE_VERBS = ("remove", "delete", "drop", "disconnect", "kill", "prune", "restore")
"""Binding ids ending in one of these (`containers.remove`) destroy or replace something."""
GLOBAL_SECTIONS = ("global", "panes")
"""Sections whose keys work everywhere, so a key there clashes with the same key in any section."""

Sections = Sequence[tuple[str, Sequence[Binding]]]


def binding_sections(app_bindings: Iterable[object]) -> list[tuple[str, list[Binding]]]:
    """(section, bindings) for the app, the panes, the shared widgets and the detail screens."""

    def own(bindings: Iterable[object]) -> list[Binding]:
        return [b for b in bindings if isinstance(b, Binding)]

    sections = [("global", own(app_bindings)), ("panes", own(MainScreen.BINDINGS))]
    for section, holder in (
        ("containers", ContainersPane),
        ("members", MembersPane),
        ("wasm", WasmPane),
        ("providers", ProvidersPane),
        ("tables", ResourceTable),
        ("logs", LogView),
        ("log screen", LogScreen),
        ("member keys", KeysScreen),
        ("member forwards", ForwardsScreen),
        ("member snapshots", SnapshotsScreen),
        ("audit", AuditScreen),
    ):
        sections.append((section, own(holder.BINDINGS)))
    return sections


def is_destructive(binding_id: str) -> bool:
    """True for a binding that destroys or replaces something."""
    return binding_id.rsplit(".", 1)[-1] in DESTRUCTIVE_VERBS


def _keys(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


def check_keymap(keymap: Mapping[str, str], sections: Sections) -> tuple[dict[str, str], list[str]]:
    """The entries of `keymap` that can be applied, and a sentence for each one that cannot."""
    where = {b.id: name for name, bindings in sections for b in bindings if b.id}
    defaults = {b.id: b.key for _, bindings in sections for b in bindings if b.id}
    problems: list[str] = []
    usable: dict[str, str] = {}
    for binding_id, keys in keymap.items():
        if binding_id not in where:
            problems.append(f"keymap: no binding has the id {binding_id!r} (see ? for the ids).")
        elif not _keys(keys):
            problems.append(f"keymap: {binding_id!r} is given no key.")
        elif is_destructive(binding_id) and (motion := [k for k in _keys(keys) if k in MOTION_KEYS]):
            problems.append(
                f"keymap: {binding_id!r} destroys something and may not sit on {motion[0]!r}, "
                "a key used to move around."
            )
        else:
            usable[binding_id] = keys
    effective = {**defaults, **usable}
    for binding_id in list(usable):
        section = where[binding_id]
        for other, other_keys in effective.items():
            if other == binding_id or not (
                where[other] == section or where[other] in GLOBAL_SECTIONS or section in GLOBAL_SECTIONS
            ):
                continue
            shared = set(_keys(usable[binding_id])) & set(_keys(other_keys))
            if shared:
                problems.append(
                    f"keymap: {binding_id!r} would share {sorted(shared)[0]!r} with {other!r}; "
                    f"{binding_id!r} keeps its default key."
                )
                usable.pop(binding_id)
                effective[binding_id] = defaults[binding_id]
                break
    return usable, problems
