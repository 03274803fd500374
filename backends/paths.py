"""Where berth keeps its files: the one place that knows the XDG locations.

Tests redirect everything with `XDG_CONFIG_HOME`, `XDG_STATE_HOME` and `XDG_DATA_HOME`, or point
at one config file with `BERTH_CONFIG`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import platformdirs

from backends.errors import Denied

APP_NAME = "berth"


def config_dir() -> Path:
    """The folder holding `config.toml` and the user's `themes/`."""
    return Path(platformdirs.user_config_dir(APP_NAME))


def config_file() -> Path:
    """The config file in use: `BERTH_CONFIG` if set, else `config.toml` in the config dir."""
    override = os.environ.get("BERTH_CONFIG")
    return Path(override).expanduser() if override else config_dir() / "config.toml"


def user_themes_dir() -> Path:
    """The folder where users drop their own theme TOML files."""
    return config_dir() / "themes"


def state_dir() -> Path:
    """Logs, the audit log and task history live here."""
    return Path(platformdirs.user_state_dir(APP_NAME))


def data_dir() -> Path:
    """Long-lived data: provider keys, the module store, the broker's database."""
    return Path(platformdirs.user_data_dir(APP_NAME))


def error_log() -> Path:
    """The file that receives tracebacks, so the screen only ever shows a sentence."""
    return state_dir() / "berth.log"


def runtime_dir() -> Path:
    """A private (0700) folder for forwarded engine sockets: under `XDG_RUNTIME_DIR`, else /tmp.

    Socket paths must stay under 108 bytes, so this stays short. The folder itself is checked, not
    what it points to: in /tmp anyone can plant a symlink named like ours to a folder they chose.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / APP_NAME if base else Path(f"/tmp/{APP_NAME}-{os.geteuid()}")
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700, parents=True)
    hint = "Remove it, or set XDG_RUNTIME_DIR to a folder of yours."
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        what = "a symlink" if folder.is_symlink() else f"not a folder berth can use ({exc.strerror})"
        why = f"{folder} is {what}; berth keeps its sockets only in a folder of its own."
        raise Denied(why, hint) from None
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            raise Denied(f"{folder} belongs to another user.", hint)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return folder


def private_dir(folder: Path, *, tighten: bool = True) -> Path:
    """Make `folder` (missing parents too, each 0700) and make it 0700: only this user may enter it.

    An existing folder is tightened as well (an older berth left its own 0755); `tighten=False`
    leaves an existing one as it is, for a folder the user chose that holds other things too.
    """
    missing = [f for f in (folder, *folder.parents) if not f.exists()]
    for part in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            part.mkdir(mode=0o700)
    if tighten or missing:
        folder.chmod(0o700)
    return folder


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_APPEND) -> int:
    """Open `path` (created if missing) as a file only this user may read or write: 0600, an
    existing looser mode tightened. Returns the descriptor (wrap it with `os.fdopen`)."""
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return fd


def private_file(path: Path) -> Path:
    """Make `path` exist (empty if new) as a 0600 file, an existing one tightened; its contents kept."""
    os.close(open_private(path))
    return path


def private_sqlite(path: Path) -> Path:
    """A SQLite database only this user may read: the file 0600 before it is opened.

    SQLite gives the -wal, -shm and -journal files it makes the database file's mode, so they are
    0600 too; ones an older berth left looser are tightened here.
    """
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).chmod(0o600)
    return path
