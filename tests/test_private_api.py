"""berth's use of its dependencies' undocumented API: only in the two modules allowed it, and only
with the exact releases those were written against (issue 16 item 5).

A failure here after an upgrade is the point: read the new release against tui/private_api.py or
backends/private_api.py, then move the number there and the pin in pyproject.toml together.
"""

import re
import tomllib
from importlib import metadata
from pathlib import Path

from backends import private_api as backends_private
from tui import private_api as tui_private

ROOT = Path(__file__).resolve().parent.parent

# A private name of a dependency: `textual._x`, `from wasmtime import _ffi`, a DataTable's bookkeeping.
PRIVATE = re.compile(
    r"\b(?:textual|textual_serve|wasmtime|aiohttp|rich)\._\w"
    r"|\bfrom (?:textual|textual_serve|wasmtime|aiohttp|rich)(?:\.\w+)* import (?:\(\s*)?_\w"
    r"|\._styles_cache|_row_locations|_parse_action"
)


def pins() -> dict[str, str]:
    """The exact pins of pyproject.toml's dependencies, by name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = {}
    for requirement in project["dependencies"]:
        name, _, version = requirement.partition("==")
        if version:
            found[name.strip()] = version.strip()
    return found


def offenders(folder: str, allowed: str) -> list[str]:
    """`file:line: text` of every use of a dependency's private name in `folder` outside `allowed`."""
    hits = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative == allowed:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if PRIVATE.search(line):
                hits.append(f"{relative}:{number}: {line.strip()}")
    return hits


def test_private_api_is_used_only_in_the_modules_allowed_it() -> None:
    # The issue's own check, `grep -rn "textual\._\|\._styles_cache\|_row_locations" tui/`, and the
    # same for every dependency berth could reach into, in the console and the backends.
    assert offenders("tui", "tui/private_api.py") == []
    assert offenders("backends", "backends/private_api.py") == []
    # The check itself finds what it is for.
    assert PRIVATE.search("from textual._two_way_dict import TwoWayDict")
    assert PRIVATE.search("from wasmtime import _ffi as ffi")
    assert PRIVATE.search("self._row_locations = {}")
    assert not PRIVATE.search("from textual.actions import parse")


def test_textual_serve_is_the_release_berth_web_was_written_for() -> None:
    installed = metadata.version("textual-serve")
    assert installed == tui_private.TEXTUAL_SERVE, (
        f"textual-serve is now {installed}, not {tui_private.TEXTUAL_SERVE}: check tui/private_api.py "
        "(AppService, the static files) and tui/web/index.html (the page's data attributes) against it"
    )
    assert tui_private.textual_serve_version() == installed
    assert tui_private.textual_serve_static().is_dir()  # it holds every file the page loads


def test_wasmtime_is_the_release_its_c_api_calls_were_written_for() -> None:
    installed = metadata.version("wasmtime")
    assert installed == backends_private.WASMTIME, (
        f"wasmtime is now {installed}, not {backends_private.WASMTIME}: check the C API calls in "
        "backends/private_api.py (their signatures, and whether the Python API now has them) against it"
    )
    assert backends_private.wasmtime_version() == installed


def test_pyproject_pins_exactly_what_is_installed_and_checked() -> None:
    pinned = pins()
    assert pinned["textual-serve"] == tui_private.TEXTUAL_SERVE
    assert pinned["wasmtime"] == backends_private.WASMTIME
    # Textual: the resource table and log view are drawn to look as Textual's own widgets do, and
    # the snapshots are taken with this release.
    for name in ("textual", "wasmtime", "textual-serve"):
        assert metadata.version(name) == pinned[name], f"{name} is not the release pyproject.toml pins"
