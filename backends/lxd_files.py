"""Copying files in and out of a member's instance through LXD's file API, as `berth cp` does for
containers (`berth member cp`, the Members pane's `c`).

`GET /1.0/instances/NAME/files?path=` answers with a file's bytes, a folder's entry names or a
link's target, and says which in its X-LXD-type/mode headers; `POST` makes one. A folder is walked
entry by entry and each file streamed in 1 MiB pieces in a worker thread (requests' stream=True)
or sent as it is read, so memory stays bounded whatever the size. What comes out passes the same
checks as a container's archive (backends/copying.py): nothing lands outside the destination.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from backends.audit import audited
from backends.copying import (
    DIR,
    FILE,
    Counter,
    Progress,
    checked,
    landing,
    left_behind,
    local_kind,
    local_total,
    unsafe,
    walk_local,
    write_failed,
)
from backends.errors import BerthError, Invalid, NotFound

if TYPE_CHECKING:
    import requests

    from backends.lxd import LxdBackend

CHUNK = 1 << 20
KINDS = {"directory": tarfile.DIRTYPE, "file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE}
"""LXD's X-LXD-type values and the entry each is made as here."""


class Stopped(Exception):
    """The copy was cancelled: the worker thread stops at its next piece."""


class _Sent:
    """A local file sent to LXD as it is read (requests streams what has `read`, its `len` the
    Content-Length), counting what went and stopping when asked."""

    def __init__(
        self, file: BinaryIO, size: int, count: Callable[[int], None], stop: threading.Event
    ) -> None:
        self.file = file
        self.size = size
        self.count = count
        self.stop = stop

    def __len__(self) -> int:
        return self.size

    def read(self, size: int = -1) -> bytes:
        if self.stop.is_set():
            raise Stopped
        data = self.file.read(size)
        self.count(len(data))
        return data


def _save(
    response: requests.Response, path: Path, count: Callable[[int], None], stop: threading.Event
) -> None:
    """Write a streamed answer to `path`, piece by piece."""
    with response, path.open("wb") as out:
        for piece in response.iter_content(CHUNK):
            if stop.is_set():
                raise Stopped
            out.write(piece)
            count(len(piece))


def _entry(response: requests.Response, name: str) -> tarfile.TarInfo:
    """The entry an answer stands for, named `name`, as the copy checks (and makes) it."""
    kind = response.headers.get("X-LXD-Type", "")
    if kind not in KINDS:
        raise unsafe(name, f"is of a type berth does not copy ({kind or 'none'})")
    info = tarfile.TarInfo(name)
    info.type = KINDS[kind]
    try:
        info.mode = int(response.headers.get("X-LXD-Mode", "0644"), 8) & 0o7777
    except ValueError:
        info.mode = 0o644
    return info


class MemberFiles:
    """Copies between here and the instances of one host's LXD."""

    def __init__(self, backend: LxdBackend) -> None:
        self.backend = backend

    @property
    def host_name(self) -> str:
        """The inventory host the LXD is on."""
        return self.backend.host_name

    async def _open(self, name: str, path: str) -> requests.Response | None:
        """The answer for `path` in instance `name`, its body not read yet; None when nothing is there."""
        try:
            return await self.backend.request(
                "get", f"instances/{name}/files", f"read {path} in {name}", params={"path": path}, stream=True
            )
        except NotFound:
            return None

    async def _kind(self, name: str, path: str) -> str | None:
        """DIR, FILE or None: what `path` is in instance `name`."""
        response = await self._open(name, path)
        if response is None:
            return None
        with response:
            return DIR if response.headers.get("X-LXD-Type") == "directory" else FILE

    async def copy_out(self, name: str, path: str, dest: Path | str, progress: Progress | None = None) -> int:
        """Copy `path` out of instance `name` to `dest` here, by docker cp's rules (as
        `DockerBackend.copy_out`); the bytes of the files copied."""
        await self.backend.member(name)
        first = await self._open(name, path)
        if first is None:
            raise NotFound(f"No {path} in {name} on {self.host_name}.", "Check the path (case counts).")
        is_dir = first.headers.get("X-LXD-Type") == "directory"
        root = posixpath.normpath(path)
        try:
            folder, base = landing(
                os.fspath(dest), local_kind(Path(dest)), is_dir, posixpath.basename(root) or "/",
                path.endswith("/."),
            )  # fmt: skip
            target = Path(folder or ".", base)
            if not target.parent.is_dir():
                raise NotFound(f"No folder {target.parent} here.", "Make it first, or copy elsewhere.")
        except BerthError:
            first.close()
            raise
        single = int(first.headers.get("Content-Length", 0) or 0) if not is_dir else None
        copy = _Copy(self, name, progress, single)
        audit_as = {"direction": "out", "path": path, "local": os.fspath(dest)}
        with audited(self.host_name, "member.cp", [name], **audit_as), copy.stopping():
            destination = str(target) if is_dir else str(target.parent)
            try:
                await copy.pull(first, root, root, "" if is_dir else target.name, destination)
            except Invalid as exc:
                raise left_behind(exc, copy.made_count, target) from None
        copy.counter.tell()
        return copy.counter.done

    async def copy_in(
        self, name: str, src: Path, path: str, progress: Progress | None = None, *, contents: bool = False
    ) -> int:
        """Copy `src` from here into instance `name` at `path`, by docker cp's rules (`contents`:
        only what the folder holds); what arrives is owned by root. The bytes of the files copied."""
        await self.backend.member(name)
        kind = local_kind(src)
        if kind is None:
            raise NotFound(f"No {src} here to copy.", "Check the path.")
        source_is_dir = kind == DIR and not src.is_symlink()
        dest_kind = await self._kind(name, path)
        folder, base = landing(path, dest_kind, source_is_dir, src.resolve().name, contents)
        if await self._kind(name, folder) != DIR:
            raise NotFound(f"No folder {folder} in {name} on {self.host_name}.", "Make it first.")
        copy = _Copy(self, name, progress, await asyncio.to_thread(local_total, src))
        audit_as = {"direction": "in", "path": path, "local": str(src)}
        with audited(self.host_name, "member.cp", [name], **audit_as), copy.stopping():
            for local, remote in walk_local(src, posixpath.normpath(posixpath.join(folder, base))):
                await copy.push(local, remote)
        copy.counter.tell()
        return copy.counter.done


class _Copy:
    """One copy under way: the bytes so far (reported as they go) and the flag that stops its
    worker threads when the copy is cancelled."""

    def __init__(self, files: MemberFiles, name: str, progress: Progress | None, total: int | None) -> None:
        self.files = files
        self.backend = files.backend
        self.name = name
        self.counter = Counter(progress, total)
        self.stop = threading.Event()
        self.made_count = 0
        """Entries written so far (copying out), for a refusal partway to say so."""

    @contextlib.contextmanager
    def stopping(self) -> Iterator[None]:
        """Stop the worker threads when the block ends early (a cancel, a failure)."""
        try:
            yield
        finally:
            self.stop.set()

    async def pull(
        self, response: requests.Response, remote: str, root: str, name: str, destination: str
    ) -> None:
        """Make what `response` is (remote path `remote`, in the copy of `root`) as `name` under
        `destination` (the destination itself for ""), a folder's entries after it."""
        made = Path(destination, name)
        entries: list[str] = []
        with response:
            info = _entry(response, name or ".")
            if info.isdir():
                entries = sorted(str(e) for e in response.json().get("metadata") or [])
            elif info.issym():
                link = response.content.decode("utf-8", "replace")
                # LXD gives a link's target as an absolute path; one into the copy is made relative again.
                if link == root or link.startswith(root.rstrip("/") + "/"):
                    link = posixpath.relpath(link, posixpath.dirname(remote))
                info.linkname = link
            safe = checked(info, destination)
            try:
                if info.isreg():
                    what = f"copy {remote} out of {self.name}"
                    await self.backend.in_thread(what, _save, response, made, self.counter.add, self.stop)
                    made.chmod(safe.mode)
                    self.made_count += 1
                    return
                if info.issym():
                    if os.path.lexists(made):
                        made.unlink()
                    made.symlink_to(safe.linkname)
                    self.made_count += 1
                    return
                made.mkdir(exist_ok=True)
                self.made_count += bool(name)  # the destination folder itself is no entry of the copy
            except OSError as exc:
                raise write_failed(made, exc) from None
        for entry in entries:
            if not entry or "/" in entry or entry in (".", ".."):
                raise unsafe(entry, "is no name a folder may hold")
            below = posixpath.join(remote, entry)
            child = await self.files._open(self.name, below)
            if child is not None:  # else it went away meanwhile
                await self.pull(child, below, root, posixpath.join(name, entry), destination)

    async def push(self, local: Path, remote: str) -> None:
        """Make `remote` in the instance from `local` (a folder, file or link; anything else is
        left out), owned by root with the mode it has here."""
        stat = local.lstat()
        headers = {"X-LXD-uid": "0", "X-LXD-gid": "0", "X-LXD-mode": f"{stat.st_mode & 0o7777:04o}"}
        what = f"copy {local} into {self.name}"
        post = f"instances/{self.name}/files"
        params = {"path": remote}
        if local.is_symlink():
            target = os.readlink(local)
            headers |= {"X-LXD-type": "symlink"}
            await self.backend.request(
                "post", post, what, params=params, data=target.encode(), headers=headers
            )
        elif local.is_dir():
            if await self.files._kind(self.name, remote) != DIR:
                headers |= {"X-LXD-type": "directory"}
                await self.backend.request("post", post, what, params=params, headers=headers)
        elif local.is_file():
            with local.open("rb") as file:
                body = _Sent(file, stat.st_size, self.counter.add, self.stop)
                headers |= {"X-LXD-type": "file", "X-LXD-write": "overwrite"}
                await self.backend.request("post", post, what, params=params, data=body, headers=headers)
