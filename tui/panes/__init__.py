"""The four panes of the console, in the order keys 1-4 select them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaneSpec:
    """A pane's id (also its `:` verb suffix and tab id), its title, and what it will manage."""

    id: str
    title: str
    key: str
    manages: str
    issue: int


PANES: tuple[PaneSpec, ...] = (
    PaneSpec(
        "containers", "Containers", "1", "Docker containers, images, compose projects, logs and stats", 3
    ),
    PaneSpec(
        "members", "Members", "2", "per-member LXD containers: keys, port forwards, snapshots, backups", 5
    ),
    PaneSpec("wasm", "Wasm tasks", "3", "WASI modules run under limits, with live output and history", 6),
    PaneSpec("providers", "Providers", "4", "the wasm offloading broker, its providers and queue", 7),
)
