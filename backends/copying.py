"""What copying files in and out of containers and members shares, whatever the engine.

The `NAME:PATH` endpoints of `berth cp` and `berth member cp` and the copy form's direction,
read by one grammar each; where a copy lands, by docker cp's rules (a folder that exists takes
the copy inside it, anything else is named after the destination, a file may replace a file);
and the checks that keep what comes out of a container inside the destination: each entry is
put through tarfile's `data` filter (no absolute paths, no `..` out, no device files, no links
out), the Docker archive as it streams and the LXD file API's entries alike.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from backends.errors import BerthError, Invalid, NotFound
from backends.units import Grammar, field_error

Progress = Callable[[int, int | None], None]
"""Told the bytes copied so far and the total when it is known, on the event loop."""
REPORT_EVERY = 1 << 20
"""Bytes between two progress reports from a worker thread."""
DIR, FILE = "dir", "file"
"""What a path is, for `landing`: a folder, or anything else that exists (None: nothing)."""


class Counter:
    """The bytes a copy moved, counted in worker threads and told to its `Progress` on the event
    loop every REPORT_EVERY bytes (not for every piece: a job's listeners redraw) and at the end."""

    def __init__(self, progress: Progress | None, total: int | None) -> None:
        self.progress = progress
        self.total = total
        self.done = 0
        self._told = 0
        self._loop = asyncio.get_running_loop()

    def add(self, size: int) -> None:
        """Count `size` more bytes (from any one thread at a time)."""
        self.done += size
        if self.done - self._told >= REPORT_EVERY:
            self.tell()

    def tell(self) -> None:
        """Report the count now."""
        self._told = self.done
        if self.progress is None:
            return
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:  # a worker thread
            on_loop = False
        if on_loop:  # at once: a report queued now could land after the copy's last word
            self.progress(self.done, self.total)
        else:
            self._loop.call_soon_threadsafe(self.progress, self.done, self.total)


def parse_direction(text: str) -> str:
    """Direction "in" (from here into the container or member) or "out" (from it to here)."""
    word = text.strip().lower()
    if word not in ("in", "out"):
        raise DIRECTION.refuse(text)
    return word


DIRECTION: Grammar[str] = Grammar(
    "copy direction", ("out", "in"), parse_direction, "out: from it to here; in: from here into it"
)


def parse_remote_path(text: str) -> str:
    """A path inside a container or member, absolute (a relative one starts at its root, as docker
    cp takes it); a trailing `/` or `/.` is kept, for it changes where a copy lands."""
    if not text.strip() or "\0" in text:
        raise REMOTE_PATH.refuse(text)
    path = posixpath.join("/", text)
    tail = "/." if path.endswith("/.") and path != "/." else "/" if path.endswith("/") else ""
    normal = posixpath.normpath(path)
    return normal + tail if normal != "/" else "/" + tail.strip("/")


REMOTE_PATH: Grammar[str] = Grammar(
    "remote path", ("/etc/hosts", "/var/log/", "/srv/data/."), parse_remote_path,
    "a path ending in /. copies what the folder holds",
)  # fmt: skip


def parse_local_path(text: str) -> Path:
    """A path here (`~` is the home folder)."""
    if not text.strip() or "\0" in text:
        raise LOCAL_PATH.refuse(text)
    return Path(text.strip()).expanduser()


LOCAL_PATH: Grammar[Path] = Grammar("local path", ("./backup", "~/hosts", "/tmp/logs/"), parse_local_path)


@dataclass(frozen=True)
class Endpoints:
    """`berth cp SRC DST` read: which way, the container or member, its path, and the path here."""

    direction: str
    """"in" (here → there) or "out" (there → here)."""
    name: str
    remote: str
    local: Path
    local_text: str
    """The local path as written: a trailing `/` or `/.` says where a copy lands."""

    @property
    def local_destination(self) -> str:
        """The local path to copy out to, with the trailing / that says it must be a folder."""
        return f"{self.local}/" if self.local_text.endswith("/") else str(self.local)

    @property
    def contents(self) -> bool:
        """Whether the local source is written SRC/.: only what the folder holds is copied in."""
        return self.local_text.endswith("/.")


def _remote(argument: str) -> tuple[str, str] | None:
    """(NAME, PATH) when `argument` is written NAME:PATH, docker's way: a colon before any slash
    (a local path with a colon in it is written ./a:b)."""
    name, colon, path = argument.partition(":")
    if not colon or "/" in name or argument.startswith((".", "~")):
        return None
    return name, path


def parse_endpoints(source: str, destination: str, what: str = "container") -> Endpoints:
    """The two arguments of `berth cp`: one of them NAME:PATH (the `what`), the other a local path."""
    there = _remote(source), _remote(destination)
    if all(there) or not any(there):
        raise Invalid(
            f"Give one {what} path, written NAME:PATH, and one local path.",
            "For example `berth cp web:/etc/hosts ./hosts`; a local path with a colon is written ./a:b.",
        )
    outward = there[0] is not None
    name, path = there[0] or there[1] or ("", "")
    local = destination if outward else source
    remote_side, local_side = ("Source", "Destination") if outward else ("Destination", "Source")
    if not name:
        raise Invalid(f"{remote_side}: name the {what} before the colon.", "Write NAME:PATH.")
    try:
        remote = parse_remote_path(path)
    except Invalid as exc:
        raise field_error(remote_side, exc) from None
    try:
        local_path = parse_local_path(local)
    except Invalid as exc:
        raise field_error(local_side, exc) from None
    return Endpoints("out" if outward else "in", name, remote, local_path, local)


def local_kind(path: Path) -> str | None:
    """DIR, FILE or None: what `path` is here (a link to a folder counts as the folder)."""
    if path.is_dir():
        return DIR
    return FILE if os.path.lexists(path) else None


def landing(
    destination: str, kind: str | None, source_is_dir: bool, source_name: str, contents_only: bool
) -> tuple[str, str]:
    """(folder, name): where a copy lands, by docker cp's rules, given what `destination` is
    (`kind`). A folder that exists takes the copy inside it under its own name (its contents
    only, for a source ending in `/.`); a missing destination is made with that name (its folder
    must exist: the caller checks); a file is replaced by a file, never by a folder."""
    trailing = destination.endswith("/") or destination.endswith("/.")
    folder, name = posixpath.split(posixpath.normpath(destination))
    if kind == DIR:
        if source_is_dir and contents_only:
            return (folder, name) if name else (destination, ".")
        return posixpath.normpath(destination), source_name
    if kind == FILE:
        if source_is_dir:
            raise Invalid(
                f"Cannot copy a folder onto the file {destination}.", "Name a folder or a new name."
            )
        if trailing:
            raise Invalid(f"{destination} is not a folder.", "Name a folder, or drop the trailing /.")
        return folder, name
    if trailing and not source_is_dir:
        raise NotFound(
            f"No folder {destination}: a file is copied into a folder that exists.",
            "Make the folder first, or drop the trailing / to give the file that name.",
        )
    return folder, name


def stripped(name: str, top: str) -> str | None:
    """An entry's `name` below the archive's top entry `top` (None: the top entry itself), or
    refused when it lies elsewhere: an archive of one path has every entry under it."""
    if name == top:
        return None
    prefix = top if top.endswith("/") else top + "/"
    if (top and not name.startswith(prefix)) or (not top and not name):
        raise unsafe(name, "lies outside the path asked for")
    return name[len(prefix) :] if top else name.lstrip("/")


def checked(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo:
    """`member` as tarfile's `data` filter lets it be made under `destination` (modes made safe),
    or the refusal of an entry that would reach outside it, be absolute, or be a device."""
    try:
        return tarfile.data_filter(member, destination)
    except tarfile.FilterError as exc:
        raise unsafe(exc.tarinfo.name, str(exc).removeprefix(repr(exc.tarinfo.name)).strip()) from None


def unsafe(name: str, why: str) -> Invalid:
    """The refusal of an entry `name` that may not be made: `why` says what it is ("is a link to
    an absolute path")."""
    return Invalid(
        f"Refused to copy: {name!r} {why}; nothing is written outside the destination.",
        "Copy the other files one by one.",
    )


def left_behind(exc: Invalid, made: int, target: Path | str) -> Invalid:
    """Refusal `exc` of an entry met partway through a copy out, saying what stays: the `made`
    entries already written to `target` (a stream is refused only when the bad entry comes, and
    what came before it is not taken away behind the user's back)."""
    if not made:
        return exc
    items = f"{made} item{'s were' if made != 1 else ' was'}"
    return Invalid(f"{exc.message.removesuffix('.')}, but {items} already copied to {target}.", exc.hint)


def write_failed(path: Path | str, exc: OSError) -> BerthError:
    """The error for a local file or folder that could not be written."""
    return BerthError(
        f"Could not write {path}: {exc.strerror or exc}.", "Check the folder exists and is writable."
    )


def walk_local(source: Path, top: str) -> Iterator[tuple[Path, str]]:
    """`source` and, for a folder, everything below it (links not followed, sorted), each with its
    name in the copy: `top`, then `top/sub/file`."""
    yield source, top
    if source.is_dir() and not source.is_symlink():
        for folder, dirs, files in os.walk(source):
            dirs.sort()
            base = posixpath.normpath(posixpath.join(top, Path(folder).relative_to(source).as_posix()))
            for name in sorted([*dirs, *files]):
                yield Path(folder, name), posixpath.join(base, name)


def local_total(source: Path) -> int:
    """The bytes of the files in `source` (what copying it in sends)."""
    files = (path for path, _name in walk_local(source, ".") if path.is_file() and not path.is_symlink())
    return sum(path.lstat().st_size for path in files)
