"""How numbers, ages and tables read on screen and on the command line."""

from __future__ import annotations

from collections.abc import Sequence


def human_bytes(count: float) -> str:
    """`1.5 GB`, `12 MB`, `512 B` (powers of 1000, as docker shows sizes)."""
    value = float(count)
    unit = "B"
    for bigger in ("kB", "MB", "GB", "TB"):
        if abs(value) < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"


def age(seconds: float) -> str:
    """`42s`, `5m`, `3h`, `2d`, `7w`: how long ago, compactly."""
    seconds = max(0.0, seconds)
    for size, unit in ((604800, "w"), (86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size * (2 if unit == "w" else 1):
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain aligned columns with a header line, as `docker ps` prints them."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


def parse_bytes(text: str) -> float:
    """The number of bytes in a `human_bytes` text (`45.1 MB` -> 45100000.0); ValueError otherwise."""
    number, _, unit = text.strip().partition(" ")
    return float(number) * _UNITS[unit]


def parse_percent(text: str) -> float:
    """`12.5%` -> 12.5; ValueError otherwise."""
    return float(text.strip().removesuffix("%"))
