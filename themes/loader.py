"""Turn theme TOML files into Textual `Theme` objects, validating every key and colour.

Shipped themes live beside this module; users add their own in `backends.paths.user_themes_dir()`.
A broken file is reported by name (and line where known) and skipped; the others still load.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from backends.errors import Invalid

SHIPPED_DIR = Path(__file__).parent
DEFAULT_THEME = "berth-dark"

_COLOUR_KEYS = (
    "primary", "secondary", "accent", "foreground", "background",
    "surface", "panel", "boost", "success", "warning", "error",
)  # fmt: skip
_FLOAT_KEYS = ("luminosity_spread", "text_alpha")


@dataclass
class ThemeSet:
    """The themes that loaded, and one sentence per file that did not."""

    themes: list[Theme] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


_THEME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}", re.ASCII)


def _colour(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"theme {path.name}: {key}: expected a colour string, got {type(value).__name__}.")
    try:
        Color.parse(value)
    except ColorParseError:
        raise Invalid(f"theme {path.name}: {key}: {value!r} is not a colour (try '#RRGGBB').") from None
    return value


def theme_from_toml(path: Path) -> Theme:
    """Read one theme file; raises `Invalid` naming the file and key for anything wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid(f"theme {path.name}: cannot be read ({exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise Invalid(f"theme {path.name}: not valid TOML: {exc}.") from None
    known = {"name", "dark", "variables", *_COLOUR_KEYS, *_FLOAT_KEYS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise Invalid(f"theme {path.name}: unknown key {unknown[0]!r}.")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise Invalid(f"theme {path.name}: name: a non-empty string is required.")
    if not _THEME_NAME.fullmatch(name.strip()):
        # The name is typed after `:theme` and listed in pickers and the palette: a plain word.
        raise Invalid(
            f"theme {path.name}: name: expected letters, digits, '-', '_' or '.' "
            f"(at most 40, starting with a letter or digit), got {name!r}."
        )
    if "primary" not in data:
        raise Invalid(f"theme {path.name}: primary: a colour is required.")
    kwargs: dict[str, Any] = {key: _colour(path, key, data[key]) for key in _COLOUR_KEYS if key in data}
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise Invalid(f"theme {path.name}: dark: expected true or false.")
    for key in _FLOAT_KEYS:
        if key in data:
            value = data[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
                raise Invalid(f"theme {path.name}: {key}: expected a number from 0 to 1.")
            kwargs[key] = float(value)
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise Invalid(f"theme {path.name}: variables: expected a table of strings.")
    return Theme(name=name.strip(), dark=dark, variables=dict(variables), **kwargs)


def load_themes(*folders: Path) -> ThemeSet:
    """Load every `*.toml` theme in `folders` (later folders override same-named themes)."""
    found: dict[str, Theme] = {}
    result = ThemeSet()
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = theme_from_toml(path)
            except Invalid as exc:
                result.errors.append(f"{exc} ({path}); skipped.")
                continue
            found[theme.name] = theme
    result.themes = list(found.values())
    return result
