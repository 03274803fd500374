"""How disk usage and its prunes are said, alike in the console and at the command line: the
preview of what a prune removes, with sizes, and the sentence after it."""

from __future__ import annotations

from backends.docker_disk import DiskKind, PruneResult
from tui.format import human_bytes

KIND_NOUNS = {
    "images": "unused image",
    "containers": "stopped container",
    "volumes": "unused volume",
    "build cache": "unused build cache record",
}
"""What a prune of each kind removes, in one word or three."""


def plural(count: int, noun: str) -> str:
    """`1 unused volume`, `3 unused volumes`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def prune_question(kind: DiskKind, host: str) -> str:
    """The question a prune asks: how many go and the bytes they give back."""
    chosen = kind.prunable
    total = sum(item.size for item in chosen)
    return f"Remove {plural(len(chosen), KIND_NOUNS[kind.kind])} on {host}, {human_bytes(total)} reclaimed?"


def prune_preview(kind: DiskKind) -> list[str]:
    """Each item the prune removes, with its size: exactly what goes."""
    return [f"{item.name}  {human_bytes(item.size)}" for item in kind.prunable]


def nothing_to_prune(kind: DiskKind, host: str) -> str:
    """Said instead of asking when the preview is empty."""
    return f"No {KIND_NOUNS[kind.kind]}s on {host}: nothing to prune."


def prune_summary(result: PruneResult, host: str) -> str:
    """What a prune did, in one sentence (with what it kept and why)."""
    said = f"Removed {plural(len(result.removed), KIND_NOUNS[result.kind])} on {host}, "
    said += f"{human_bytes(result.reclaimed)} reclaimed."
    if result.failed:
        said += " Kept " + "; ".join(f"{item.name}: {why.rstrip('.')}" for item, why in result.failed) + "."
    return said
