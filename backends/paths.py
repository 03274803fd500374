"""Where berth keeps its files: the one place that knows the XDG locations.

Tests redirect everything with `XDG_CONFIG_HOME`, `XDG_STATE_HOME` and `XDG_DATA_HOME`, or point
at one config file with `BERTH_CONFIG`.
"""

from __future__ import annotations

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

    Socket paths must stay under 108 bytes, so this stays short.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / APP_NAME if base else Path(f"/tmp/{APP_NAME}-{os.geteuid()}")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid != os.geteuid():
        raise Denied(f"{folder} belongs to another user.", "Set XDG_RUNTIME_DIR to a folder of yours.")
    folder.chmod(0o700)
    return folder
