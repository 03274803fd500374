"""Sizes as people write them ("512MiB", "2GB", "1048576"), for limits on any engine."""

from __future__ import annotations

import re

from backends.errors import Invalid

_SIZE_UNITS = {
    "": 1, "B": 1,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4, "PB": 1000**5,
    "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4, "PIB": 1024**5,
}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]i?B|B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in a size such as "512MiB", "2GB" or "1073741824"; Invalid otherwise."""
    match = _SIZE.match(text)
    if not match:
        raise Invalid(f"Not a size: {text!r}.", "Write it like 512MiB, 2GiB or 1GB.")
    return int(float(match[1]) * _SIZE_UNITS[(match[2] or "").upper()])
