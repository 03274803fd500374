"""The console's one home for its dependencies' undocumented API, each use checked against the exact
release it was written for (pyproject.toml pins those releases; tests/test_private_api.py fails when
the installed one is another).

Textual: none. The resource table draws itself with the Line API (tui/widgets/table_grid.py), the
log view asks for a repaint instead of clearing Textual's styles cache, and the app reads actions
with `textual.actions.parse`.

textual-serve: its documented API is `Server` alone, which serves anyone who reaches its port and
loads a font from a public CDN. `berth web` (tui/web_server.py) serves its own page instead, with
the browser half of textual-serve (its static folder: xterm.js, the stylesheet, the font) and one
console process per WebSocket through its `AppService`. textual-serve is imported only when those
are used: the console itself never loads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING

from backends.errors import Invalid

if TYPE_CHECKING:
    from textual_serve.app_service import AppService as ConsoleService

__all__ = [
    "STATIC_FILES",
    "TEXTUAL_SERVE",
    "ConsoleService",
    "console_service",
    "textual_serve_static",
    "textual_serve_version",
]

TEXTUAL_SERVE = "1.1.3"
"""The textual-serve release the uses below were written against (its static files, `AppService`)."""
STATIC_FILES = ("js/textual.js", "css/xterm.css", "fonts/RobotoMono-VariableFont_wght.ttf")
"""What berth's page loads from textual-serve's static folder (the italic font too, but it may go)."""


def textual_serve_version() -> str:
    """The textual-serve release installed here."""
    return metadata.version("textual-serve")


def textual_serve_static() -> Path:
    """textual-serve's static folder, checked to hold what berth's page loads (Invalid if not)."""
    folder = Path(str(resources.files("textual_serve") / "static"))
    missing = [name for name in STATIC_FILES if not (folder / name).is_file()]
    if missing:
        raise Invalid(
            f"textual-serve {textual_serve_version()} lacks {', '.join(missing)} in {folder}.",
            f"berth web needs textual-serve {TEXTUAL_SERVE}: pip install textual-serve=={TEXTUAL_SERVE}.",
        )
    return folder


def console_service(
    command: str,
    write_bytes: Callable[[bytes], Awaitable[None]],
    write_str: Callable[[str], Awaitable[None]],
    close: Callable[[], Awaitable[None]],
) -> ConsoleService:
    """textual-serve's `AppService` for one console process (`command`, run by the shell): what it
    draws goes to `write_bytes`/`write_str`, and `close` is called when it exits. It never offers a
    file for download (berth has none), though `AppService` wants somewhere to put one."""
    from textual_serve.app_service import AppService
    from textual_serve.download_manager import DownloadManager

    return AppService(
        command, write_bytes=write_bytes, write_str=write_str, close=close, download_manager=DownloadManager()
    )
