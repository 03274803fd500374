"""Image references as people write them (`busybox`, `ghcr.io/me/tool:1`, `localhost:5000/x@sha256:…`),
read by one parser for the command line and the forms, with the grammar Docker's own reference
parser has: a name of lowercase path components, optionally behind a registry host, then an
optional tag and digest. A reference Docker would refuse is refused here, before any request,
with a sentence about what was typed rather than the engine's "invalid reference format"."""

from __future__ import annotations

import re

from backends.units import Grammar

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*(?::\d{{1,5}})?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH}(?:/{_PATH})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)
MAX_REFERENCE = 512
"""Longest reference taken (Docker allows a 255-character name, a 128-character tag and a digest)."""


def parse_image_ref(text: str) -> str:
    """An image reference, stripped; Invalid when Docker would refuse it."""
    written = text.strip()
    if len(written) > MAX_REFERENCE or not _REFERENCE.fullmatch(written):
        raise IMAGE_REF.refuse(text)
    return written


IMAGE_REF: Grammar[str] = Grammar(
    "image reference",
    ("busybox", "ghcr.io/me/tool:1", "localhost:5000/app:2"),
    parse_image_ref,
    "lowercase names; a registry host and a :tag or @digest if needed",
)
"""A container image, by name and tag or digest."""
