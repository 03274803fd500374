"""Quantities as people write them: sizes ("512MiB", "2GB", "1048576") and durations ("500ms",
"30s", "1h30m"), each read by one parser that the command line and the forms share.

Each kind is a `Grammar`: the parser and the examples a form shows as its hint, so a hint can't
promise a notation the parser refuses. The other kinds, each with its grammar: SSH keys in
parse_keys.py, host URLs, listen addresses and ports in parse_addresses.py, env pairs and
folders in parse_pairs.py, image references in parse_images.py.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Generic, TypeVar

from backends.errors import Invalid

T = TypeVar("T")


@dataclass(frozen=True)
class Grammar(Generic[T]):
    """One kind of input: what it is called, how it is written, and the function that reads it.

    `parse` raises `Invalid` (a sentence saying what is wrong, then `hint`) for text it refuses;
    `examples` are what forms show in an empty field and errors offer as the way to write it.
    """

    kind: str
    examples: tuple[str, ...]
    parse: Callable[[str], T]
    note: str = ""
    """What the examples don't show (a bare number is seconds, comments are skipped…)."""

    @property
    def example(self) -> str:
        """The examples as an empty field shows them."""
        return " · ".join(self.examples)

    @property
    def hint(self) -> str:
        """How to write it, as the sentence after an error."""
        first, last = self.examples[:-1], self.examples[-1]
        listed = f"{', '.join(first)} or {last}" if first else last
        return f"Write it like {listed}{f' ({self.note})' if self.note else ''}."

    def refuse(self, text: str, why: str = "") -> Invalid:
        """The error for `text`: it is not one of these (and `why`, when there is more to say)."""
        article = "an" if self.kind[:1] in "aeiou" else "a"
        return Invalid(f"Not {article} {self.kind}: {quoted(text)}{f' ({why})' if why else ''}.", self.hint)

    def as_text(self) -> Grammar[str]:
        """This kind read as the text written, once it parses (for values kept as typed)."""

        def check(text: str) -> str:
            self.parse(text)
            return text

        return Grammar(self.kind, self.examples, check, self.note)


def quoted(text: str) -> str:
    """`text` quoted for an error sentence, cut to 40 characters (a pasted blob stays readable)."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


def field_error(name: str, exc: Invalid) -> Invalid:
    """`exc` said of one field of a form, `name` first ("Wall time: Not a duration: …"), as click
    names an option before the same sentence."""
    return Invalid(f"{name}: {exc.message}", exc.hint, exc.cli_hint)


_SIZE_UNITS = {
    "": 1, "B": 1,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4, "PB": 1000**5,
    "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4, "PIB": 1024**5,
}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]i?B|B)?\s*$", re.IGNORECASE | re.ASCII)


def parse_size(text: str) -> int:
    """Bytes in a size such as "512MiB", "2GB" or "1073741824"; Invalid otherwise."""
    match = _SIZE.match(text)
    if not match:
        raise SIZE.refuse(text)
    # Exact arithmetic: a float would round 1.1GB, and overflow on a long row of digits.
    return int(Fraction(match[1]) * _SIZE_UNITS[(match[2] or "").upper()])


SIZE: Grammar[int] = Grammar("size", ("512MiB", "2GiB", "1GB"), parse_size)
"""A byte count: a number with B, KB…PB (powers of 1000) or KiB…PiB (of 1024); bare: bytes."""

_PERCENT = re.compile(r"^(\d+)%$", re.ASCII)


def parse_memory_limit(text: str) -> int | None:
    """Bytes in a memory limit written as a size ("512MiB"); None for a share of the host's
    memory ("50%", 1 to 100), which LXD takes as written; Invalid otherwise."""
    percent = _PERCENT.match(text)
    if percent:
        if not 1 <= int(percent[1]) <= 100:
            raise MEMORY_LIMIT.refuse(text, "a share is from 1% to 100%")
        return None
    if not _SIZE.match(text):
        raise MEMORY_LIMIT.refuse(text)
    return parse_size(text)


MEMORY_LIMIT: Grammar[int | None] = Grammar(
    "memory limit", ("512MiB", "2GiB", "50%"), parse_memory_limit, "a percentage is of the host's memory"
)
"""The most memory an instance may use: a size, or a percentage of its host's."""

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
# ASCII: \d would take other scripts' digits, which float() reads too.
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|[smhd])", re.ASCII)
_DURATION = re.compile(rf"^(?:{_NUMBER}(?:ms|[smhd]))+$", re.ASCII)
_SECONDS = re.compile(rf"^{_NUMBER}$", re.ASCII)


def parse_duration(text: str) -> float:
    """Seconds in `500ms`, `90s`, `10m`, `1h30m`, `2d` or a bare number of seconds (`1.5`);
    Invalid otherwise."""
    written = text.strip()
    if _SECONDS.match(written):
        seconds = float(written)
    elif _DURATION.match(written):
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(written))
    else:
        raise DURATION.refuse(text)
    if not math.isfinite(seconds):
        raise DURATION.refuse(text, "too long")
    return seconds


def parse_time_limit(text: str) -> float:
    """Seconds in a duration that limits something, which must be longer than 0 s."""
    seconds = parse_duration(text)
    if seconds <= 0:
        raise Invalid(f"Not a time limit: {quoted(text)} (it must be longer than 0 s).", DURATION.hint)
    return seconds


DURATION: Grammar[float] = Grammar(
    "duration", ("500ms", "30s", "5m", "1h30m"), parse_duration, "a bare number is seconds"
)
"""A length of time: numbers with ms, s, m, h or d, one after another; bare: seconds."""

TIME_LIMIT: Grammar[float] = dataclasses.replace(DURATION, parse=parse_time_limit)
"""A duration that bounds something (a wall time, a timeout): longer than 0 s."""


_COUNT = re.compile(r"^\d+(?:[,_]\d+)*$", re.ASCII)


def parse_count(text: str) -> int:
    """A whole number of 1 or more, its digits grouped with `,` or `_` if one likes
    ("1,000,000", "1_000_000"); Invalid otherwise."""
    written = text.strip()
    if not _COUNT.match(written) or int(written.replace(",", "").replace("_", "")) < 1:
        raise COUNT.refuse(text)
    return int(written.replace(",", "").replace("_", ""))


COUNT: Grammar[int] = Grammar(
    "number of 1 or more", ("1", "64", "1_000_000"), parse_count, "digits may be grouped with , or _"
)
"""A count of something (fuel, copies), 1 or more."""

MAX_COPIES = 100_000
"""The most copies of one task one submission queues (the console's form and `berth submit`)."""


def parse_copies(text: str) -> int:
    """How many copies of a task to queue: a count from 1 to MAX_COPIES; Invalid otherwise."""
    try:
        copies = parse_count(text)
    except Invalid:
        raise COPIES.refuse(text) from None
    if copies > MAX_COPIES:
        raise COPIES.refuse(text, f"at most {MAX_COPIES:,}")
    return copies


COPIES: Grammar[int] = Grammar(
    f"number of copies from 1 to {MAX_COPIES:,}", ("1", "100", "10_000"), parse_copies
)
"""How many copies of one task a submission queues."""


def parse_workers(text: str) -> int:
    """How many worker processes: `max` (one per core of the machine that reads it) or a count."""
    if text.strip().lower() == "max":
        return os.cpu_count() or 1
    try:
        return parse_count(text)
    except Invalid:
        raise WORKERS.refuse(text) from None


WORKERS: Grammar[int] = Grammar(
    "number of worker processes", ("max", "1", "4"), parse_workers, "max: one per core where it runs"
)
"""A provider's worker processes; a form for another machine keeps the text (`max` is read there)."""


_YES_NO = {"y": True, "yes": True, "n": False, "no": False}


def parse_yes_no(text: str) -> bool:
    """True for y or yes, False for n or no (any case); Invalid otherwise (a form leaves an empty
    field to its default)."""
    answer = _YES_NO.get(text.strip().lower())
    if answer is None:
        raise YES_NO.refuse(text)
    return answer


YES_NO: Grammar[bool] = Grammar("yes/no answer", ("y", "yes", "n", "no"), parse_yes_no)
"""An answer to a yes/no question."""


def written_size(size: int) -> str:
    """`size` bytes as one would write it for `parse_size`: the largest binary unit it is a whole
    number of ("256MiB"), else bytes."""
    for unit in ("PiB", "TiB", "GiB", "MiB", "KiB"):
        scale = _SIZE_UNITS[unit.upper()]
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def written_duration(seconds: float) -> str:
    """`seconds` as one would write it for `parse_duration`: the largest unit it is a whole number
    of ("7d", "10m", "500ms"), else seconds ("1.5s"); `parse_duration` reads back the same value."""
    for unit in ("d", "h", "m", "s", "ms"):
        count = round(seconds / _DURATION_UNITS[unit])
        if count >= 1 and parse_duration(f"{count}{unit}") == seconds:
            return f"{count}{unit}"
    return f"{Decimal(repr(seconds)):f}s"  # repr: the shortest that reads back; never 1e-05
