"""Every key binding of the console by section, and the check of a user keymap against them.

`[ui] keymap` maps binding ids to keys (Textual's `App.set_keymap`). At start-up each entry is
checked: an unknown id, a key that is no key name Textual knows (a footer would show it, no key
would ever press it), a key taken by another binding of the same section, a global one or one
Textual's App keeps (the command palette's `ctrl+p`), or a destructive verb put on a key vim users
hit to move (`j`, `ctrl+d`…) is reported by name and left out, so the defaults stay predictable.
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
from textual.keys import KEY_NAME_REPLACEMENTS, Keys, key_to_character

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


MODIFIERS = frozenset(("ctrl", "shift", "alt", "super", "hyper", "meta"))
"""The modifiers Textual names in a key (`ctrl+shift+up`)."""

NAMED_KEYS = frozenset((
    *(key.value.rpartition("+")[2] for key in Keys if not key.value.startswith("<")),
    *KEY_NAME_REPLACEMENTS.values(),
))
"""The keys Textual names that are no character's Unicode name (`escape`, `f5`, `slash`), without
modifiers; its pseudo-keys (`<scroll-up>`) are left out, no key press is one."""


def is_key_name(key: str) -> bool:
    """Whether `key` is a key as Textual names a press: modifiers, then a printable character, a
    named key or a character's name as Textual gives it (`question_mark`, not `solidus` or
    `latin_small_letter_a`, which it calls `slash` and `a`)."""
    *modifiers, base = key.split("+")
    if not set(modifiers) <= MODIFIERS or not base:
        return False
    if len(base) == 1:
        return base.isprintable()
    if base in NAMED_KEYS:
        return True
    # Textual names a character by its Unicode name in lower case, with _ for spaces and dashes.
    character = key_to_character(base)
    return (
        character is not None
        and character.isprintable()
        and not character.isalnum()
        and base == base.lower()
        and base not in KEY_NAME_REPLACEMENTS
    )


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

    def action_of(self, binding_id: str) -> str:
        """The action of this section's binding `binding_id`."""
        return next(b.action for b in self.bindings if b.id == binding_id)

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


def app_kept_keys(sections: Sequence[Section]) -> dict[str, tuple[str, str]]:
    """Key -> (action, what it is) for the keys Textual's App takes before any binding of the
    console sees them: its priority bindings (`ctrl+q`) and the command palette's key."""
    apps = [section.owner for section in sections if issubclass(section.owner, App)]
    app = apps[0] if apps else App
    kept = {
        key: (binding.action, f"Textual's own {binding.action!r}")
        for binding in App.BINDINGS
        if isinstance(binding, Binding) and binding.priority
        for key in _keys(binding.key)
    }
    if app.ENABLE_COMMAND_PALETTE:
        kept[app.COMMAND_PALETTE_BINDING] = ("command_palette", "the command palette")
    return kept


def check_keymap(keymap: Mapping[str, str], sections: Sequence[Section]) -> tuple[dict[str, str], list[str]]:
    """The entries of `keymap` that can be applied, and a sentence for each one that cannot."""
    where: dict[str, list[Section]] = {}  # a verb a view binds too (`v`) is in both sections
    for section in sections:
        for binding in section.bindings:
            if binding.id:
                where.setdefault(binding.id, []).append(section)
    defaults = {b.id: b.key for section in sections for b in section.bindings if b.id}
    kept = app_kept_keys(sections)
    problems: list[str] = []
    usable: dict[str, str] = {}
    for binding_id, keys in keymap.items():
        if binding_id not in where:
            problems.append(f"keymap: no binding has the id {binding_id!r} (see ? for the ids).")
        elif not _keys(keys):
            problems.append(f"keymap: {binding_id!r} is given no key.")
        elif unknown := [k for k in _keys(keys) if not is_key_name(k)]:
            problems.append(
                f"keymap: {binding_id!r} is given {unknown[0]!r}, which is not a key (a character like "
                "'x', or a name like 'question_mark', 'f5' or 'ctrl+x'); it keeps its default key."
            )
        elif is_destructive(binding_id) and (motion := [k for k in _keys(keys) if k in MOTION_KEYS]):
            problems.append(
                f"keymap: {binding_id!r} destroys something and may not sit on {motion[0]!r}, "
                "a key used to move around."
            )
        elif taken := [
            k for k in _keys(keys) if k in kept and kept[k][0] != where[binding_id][0].action_of(binding_id)
        ]:
            problems.append(
                f"keymap: {binding_id!r} would share {taken[0]!r} with {kept[taken[0]][1]}, which the app "
                f"takes before any pane; {binding_id!r} keeps its default key."
            )
        else:
            usable[binding_id] = keys
    effective = {**defaults, **usable}
    for binding_id in list(usable):
        for other, other_keys in effective.items():
            if other == binding_id or not any(
                mine.shares_keys_with(theirs) for mine in where[binding_id] for theirs in where[other]
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
