"""Every key binding of the console by section, and the check of a user keymap against them.

`[ui] keymap` maps binding ids to keys (Textual's `App.set_keymap`). At start-up each entry is
checked: an unknown id, a key taken by another binding of the same section (or a global one), or
a destructive verb put on a key vim users hit to move (`j`, `ctrl+d`…) is reported by name and
left out, so the defaults stay predictable.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from textual.app import App
from textual.binding import Binding
from textual.dom import DOMNode

from tui.screens.main import MainScreen
from tui.verbs import find

CONSOLE_PACKAGES = ("tui.panes", "tui.screens", "tui.widgets")
"""Where the console's widgets and screens live: every module there is read for bindings."""

# fmt: off
MOTION_KEYS = frozenset((
    "h", "j", "k", "l", "w", "b", "e", "g", "G", "0", "n", "N",
    "dollar_sign", "left_curly_bracket", "right_curly_bracket",
    "ctrl+d", "ctrl+u", "ctrl+f", "ctrl+b", "ctrl+e", "ctrl+y", "ctrl+n", "ctrl+p",
    "up", "down", "left", "right", "pageup", "pagedown", "home", "end",
))
# fmt: on
"""Keys vim and less users press to move around: no destructive verb may sit on one."""


@dataclass(frozen=True)
class Section:
    """The bindings one class of the console declares itself (its bases' are in their own
    sections), named after their ids' first word (`members` for `members.delete`)."""

    name: str
    owner: type[DOMNode]
    bindings: tuple[Binding, ...]

    @property
    def everywhere(self) -> bool:
        """The app's and the main frame's keys answer wherever a widget does not take the key
        first, so one of them clashes with the same key anywhere."""
        return issubclass(self.owner, App | MainScreen)

    def shares_keys_with(self, other: Section) -> bool:
        """Whether a key in both sections would clash: either works everywhere, or one class is
        the other or derives from it (a screen's keys and those of the screen it extends)."""
        return (
            self.everywhere
            or other.everywhere
            or issubclass(self.owner, other.owner)
            or issubclass(other.owner, self.owner)
        )


def _subclasses(cls: type[DOMNode]) -> Iterator[type[DOMNode]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@cache
def binding_sections() -> tuple[Section, ...]:
    """A section for every class of the console that declares key bindings, found by walking
    the classes rather than listed, so a new screen or widget cannot be left out: the app first,
    then the main frame, then the rest by module. A class defined outside `tui` belongs to the
    console when its bindings are the registry's verbs (`tui.verbs.bindings`)."""
    importlib.import_module("tui.app")
    for package in CONSOLE_PACKAGES:
        path = importlib.import_module(package).__path__
        for module in pkgutil.iter_modules(path, f"{package}."):
            importlib.import_module(module.name)
    sections = []
    for cls in set(_subclasses(DOMNode)):
        own = [b for b in cls.__dict__.get("BINDINGS", ()) if isinstance(b, Binding)]
        if own and (cls.__module__.startswith("tui.") or all(find(b.id) for b in own)):
            ids = [b.id for b in own if b.id]
            name = ids[0].split(".", 1)[0] if ids else cls.__name__.lower()
            sections.append(Section(name, cls, tuple(own)))
    return tuple(sorted(sections, key=_place))


def _place(section: Section) -> tuple[bool, bool, str, str]:
    owner = section.owner
    return (not issubclass(owner, App), not section.everywhere, owner.__module__, owner.__qualname__)


def is_destructive(binding_id: str) -> bool:
    """True for a binding that destroys or replaces something (its verb says `destroys`)."""
    verb = find(binding_id)
    return verb is not None and verb.destroys


def _keys(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


def check_keymap(keymap: Mapping[str, str], sections: Sequence[Section]) -> tuple[dict[str, str], list[str]]:
    """The entries of `keymap` that can be applied, and a sentence for each one that cannot."""
    where = {b.id: section for section in sections for b in section.bindings if b.id}
    defaults = {b.id: b.key for section in sections for b in section.bindings if b.id}
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
            if other == binding_id or not section.shares_keys_with(where[other]):
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
