"""How a pull's progress reads, in `:jobs` and on the command line alike: a line a layer, and a
summary of the bytes and layers of all of them."""

from __future__ import annotations

from backends.docker_pull import STOPPED, LayerProgress, PullProgress
from tui.format import human_bytes

SHOWN_BYTES = frozenset({"Downloading", "Extracting", STOPPED})
"""Statuses whose bytes are the layer's current step, "12 MB / 30 MB" (a stopped layer's: how
far its download got)."""


def layer_line(layer: LayerProgress) -> str:
    """`6c53c70322e2  Downloading  1.2 MB / 2.1 MB`, `a5bacadb61d8  Already exists`."""
    line = f"{layer.layer[:12]}  {layer.status}"
    if layer.status in SHOWN_BYTES and layer.total:
        return f"{line}  {human_bytes(layer.current)} / {human_bytes(layer.total)}"
    if layer.size:
        return f"{line}  {human_bytes(layer.size)}"
    return line


def layer_lines(progress: PullProgress) -> list[str]:
    """Every layer's line, in the order the engine named them."""
    return [layer_line(layer) for layer in progress.layers.values()]


def pull_summary(progress: PullProgress) -> str:
    """`1.2 MB of 2.1 MB, 1 of 2 layers done`; once stopped, how it ended."""
    if progress.stopped:
        return progress.stopped
    layers = list(progress.layers.values())
    finished = sum(layer.finished for layer in layers)
    size = f"{human_bytes(progress.done)} of {human_bytes(progress.total)}, " if progress.total else ""
    return f"{size}{finished} of {len(layers)} layers done" if layers else progress.status or "starting"
