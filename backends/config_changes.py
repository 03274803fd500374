"""The changes berth makes to the config file for its user (a host added, a theme chosen): each
saved, then written to the audit log under host "local", for the CLI and the console alike."""

from __future__ import annotations

from pathlib import Path

from backends.audit import audited
from backends.config import Config, HostConfig, save_config

HOST = "local"
"""The host the audit log names for the config file's changes: the file is on this machine."""


def save_host(config: Config, host: HostConfig, path: Path | None = None) -> Path:
    """Save `config`, which `host` was just added to (see `backends.config.add_host`); where it
    was written. Recorded as host.add with the host's URL and whether it is read-only."""
    with audited(HOST, "host.add", [host.name], url=host.url, read_only=host.read_only):
        return save_config(config, path)


def save_theme(config: Config, previous: str) -> Path:
    """Save `config` whose theme was just switched from `previous`; where it was written.
    Recorded as theme.switch to the new theme, naming the previous one."""
    with audited(HOST, "theme.switch", [config.ui.theme], previous=previous):
        return save_config(config)
