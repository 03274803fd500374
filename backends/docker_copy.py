"""Docker copying files in and out of a container, streamed as tar, as `docker cp` does.

The Engine API hands a path out as a tar (`GET /containers/{id}/archive`) and takes a tar into a
folder (`PUT`); `HEAD` says what a path is (the `X-Docker-Container-Path-Stat` header). The tar
is read or built in a worker thread while its bytes stream over HTTP, through a `Pipe` that holds
a few MiB at most: never a copy of the whole thing in memory or on disk.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import json
import os
import tarfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

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
    stripped,
    unsafe,
    walk_local,
    write_failed,
)
from backends.docker_calls import EngineCalls
from backends.errors import BerthError, Invalid, NotFound

T = TypeVar("T")
PIPE_LIMIT = 4 << 20
"""Bytes the pipe between the HTTP stream and the tar thread holds at most."""
CHUNK = 1 << 20
"""The largest piece sent in one write of a chunked upload."""
_MODE_DIR = 1 << 31  # Go's os.ModeDir, as the stat header gives a mode
_MODE_SYMLINK = 1 << 27


class Pipe:
    """Bytes handed from one side to the other (the event loop and a worker thread), at most
    `limit` held at once; file-like for tarfile. Either side may `abandon` it, and the other's
    next read or write then raises BrokenPipeError instead of waiting for ever."""

    def __init__(self, limit: int = PIPE_LIMIT) -> None:
        self._pieces: collections.deque[bytes] = collections.deque()
        self._at = 0  # how much of the first piece was read already
        self._held = 0
        self._limit = limit
        self._ended = False
        self._abandoned = False
        self._turn = threading.Condition()

    def write(self, data: bytes) -> int:
        """Add `data`, waiting while the pipe is full."""
        with self._turn:
            while self._held >= self._limit and not self._abandoned:
                self._turn.wait()
            if self._abandoned:
                raise BrokenPipeError("the other side of the copy stopped")
            if data:
                self._pieces.append(bytes(data))
                self._held += len(data)
                self._turn.notify_all()
        return len(data)

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all there are for -1), waiting while the pipe is empty; b"" once the
        writer ended and everything was read."""
        with self._turn:
            while not self._pieces and not self._ended and not self._abandoned:
                self._turn.wait()
            if self._abandoned:
                raise BrokenPipeError("the other side of the copy stopped")
            out = bytearray()
            while self._pieces and (size < 0 or len(out) < size):
                piece = self._pieces[0]
                take = len(piece) - self._at if size < 0 else min(len(piece) - self._at, size - len(out))
                out += piece[self._at : self._at + take]
                self._at += take
                if self._at == len(piece):
                    self._pieces.popleft()
                    self._at = 0
            self._held -= len(out)
            self._turn.notify_all()
            return bytes(out)

    def end(self) -> None:
        """No more writes: the reader sees the end once it has read what is held."""
        with self._turn:
            self._ended = True
            self._turn.notify_all()

    def abandon(self) -> None:
        """Stop both sides: what is held is dropped."""
        with self._turn:
            self._abandoned = True
            self._pieces.clear()
            self._held = 0
            self._turn.notify_all()


@dataclass(frozen=True)
class PathStat:
    """What a path in a container is, from the engine's stat header."""

    name: str
    size: int
    is_dir: bool
    link_target: str

    @classmethod
    def from_header(cls, header: str) -> PathStat:
        """Read `X-Docker-Container-Path-Stat` (base64 of a JSON object)."""
        try:
            raw = json.loads(base64.b64decode(header))
            mode = int(raw.get("mode", 0))
            return cls(str(raw.get("name", "")), int(raw.get("size", 0)), bool(mode & _MODE_DIR),
                       str(raw.get("linkTarget", "")) if mode & _MODE_SYMLINK else "")  # fmt: skip
        except (ValueError, TypeError, AttributeError, binascii.Error):
            raise BerthError("The engine's answer about the path could not be read.") from None


def extract(source: Pipe | BinaryIO, target: Path, is_dir: bool) -> int:
    """Make `target` from the tar read from `source`, an archive of one path: a folder's entries go
    under `target` (the archive's top entry is the folder itself), a file's one entry becomes
    `target`. Every entry passes `checked` first. Returns the bytes of the files made."""
    written = 0
    folders: list[tuple[tarfile.TarInfo, str]] = []
    entries = 0  # written, for a refusal partway to say so
    try:
        # The stubs want a whole file object; a stream is only read (written, for "w|").
        with tarfile.open(fileobj=source, mode="r|") as tar:  # type: ignore[call-overload]
            top: str | None = None
            destination = str(target if is_dir else target.parent)
            if is_dir:
                target.mkdir(exist_ok=True)
            for member in tar:
                if top is None:
                    top = member.name
                    if not is_dir:
                        member.name = target.name
                    elif not member.isdir():
                        raise unsafe(member.name, "is no folder, and a folder was asked for")
                elif not is_dir:
                    raise unsafe(member.name, "came after the file asked for")
                if is_dir:
                    name = stripped(member.name, top)
                    if name is None:
                        continue
                    member.name = name
                    if member.islnk():  # a hard link names its target by its archive name too
                        member.linkname = stripped(member.linkname, top) or "."
                safe = checked(member, destination)
                tar.extract(safe, destination, set_attrs=not safe.isdir(), filter="fully_trusted")
                entries += 1
                written += safe.size if safe.isreg() else 0
                if safe.isdir():
                    folders.append((safe, os.path.join(destination, safe.name)))
            for folder, made in reversed(folders):  # once their files are in: a folder may be read-only
                tar.chmod(folder, made)
                tar.utime(folder, made)
        while source.read(CHUNK):  # what follows the archive's end (its padding) is read, not left waiting
            pass
    except Invalid as exc:
        raise left_behind(exc, entries, target) from None
    except tarfile.TarError as exc:
        raise BerthError(f"The archive the engine sent broke off ({exc}).", "Try the copy again.") from None
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise  # the stream stopped: its error says why
        raise write_failed(target, exc) from None
    return written


class _Counted:
    """A file read for the tar, its bytes counted."""

    def __init__(self, file: BinaryIO, count: Callable[[int], None]) -> None:
        self.file = file
        self.count = count

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.count(len(data))
        return data


def build(sink: Pipe, source: Path, arcname: str, counter: Counter) -> int:
    """Write a tar of `source` named `arcname` into `sink`, owned by root (as docker cp makes
    what it copies in), its files' bytes counted on `counter`. Returns them."""

    try:
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for path, name in walk_local(source, arcname):
                info = tar.gettarinfo(str(path), name)
                if info is None:  # a socket: not something a tar holds
                    continue
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                if info.isreg():
                    with path.open("rb") as file:
                        tar.addfile(info, _Counted(file, counter.add))
                else:
                    tar.addfile(info)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise BerthError(f"Could not read {exc.filename or source}: {exc.strerror or exc}.") from None
    finally:
        sink.end()
    counter.tell()
    return counter.done


async def _with_thread(pipe: Pipe, work: Callable[[], T], stream: Callable[[], Awaitable[None]]) -> T:
    """Run `work` in a worker thread while `stream()` moves the bytes on the event loop. The pipe
    is abandoned when either stops, so neither waits for the other for ever; when both fail, the
    thread's own error says why (the stream's is then only that the pipe broke)."""

    def side() -> T:
        try:
            return work()
        except BaseException:
            pipe.abandon()
            raise

    thread = asyncio.ensure_future(asyncio.to_thread(side))
    try:
        try:
            await stream()
        except BerthError:
            pipe.abandon()
            await asyncio.wait([thread])
            failure = None if thread.cancelled() else thread.exception()
            if isinstance(failure, BerthError):
                raise failure from None
            raise
        return await thread
    finally:
        pipe.abandon()
        if not thread.done():
            await asyncio.wait([thread])
        if not thread.cancelled():
            thread.exception()  # retrieved: what is raised above says how it went


class CopyCalls(EngineCalls):
    """A base of `DockerBackend`: copying files in and out of containers (`berth cp`, `c`)."""

    async def _named(self, container: str) -> tuple[str, str]:
        """(id, name) of a container by name, id or id prefix."""
        try:
            raw = await self.http.get_json(f"/containers/{container}/json", f"looking up {container}")
        except NotFound:
            raise NotFound(
                f"No container {container!r} on {self.host_name}.", "List them with `berth ps --all`."
            ) from None
        return str(raw["Id"]), str(raw.get("Name", container)).lstrip("/")

    async def path_stat(self, container: str, path: str) -> PathStat | None:
        """What `path` is in the container; None when there is nothing there."""
        try:
            async with self.http.request(
                "HEAD", f"/containers/{container}/archive", f"looking at {path}", params={"path": path}
            ) as resp:
                return PathStat.from_header(resp.headers.get("x-docker-container-path-stat", ""))
        except NotFound:
            return None

    async def copy_out(
        self, container: str, path: str, dest: Path | str, progress: Progress | None = None
    ) -> int:
        """Copy `path` out of the container to `dest` here, by docker cp's rules (see
        `backends.copying.landing`; given as text, a trailing / says `dest` is a folder); the bytes
        of the files copied."""
        cid, name = await self._named(container)
        stat = await self.path_stat(cid, path)
        if stat is None:
            raise NotFound(f"No {path} in {name} on {self.host_name}.", "Check the path (case counts).")
        folder, base = landing(
            os.fspath(dest), local_kind(Path(dest)), stat.is_dir, stat.name, path.endswith("/.")
        )
        target = Path(folder or ".", base)
        if not target.parent.is_dir():
            raise NotFound(f"No folder {target.parent} here.", "Make it first, or copy elsewhere.")
        total = None if stat.is_dir else stat.size
        audit_as = {"names": [name], "direction": "out", "path": path, "local": str(dest)}
        with audited(self.host_name, "container.cp", [cid], **audit_as):
            async with self.http.request(
                "GET", f"/containers/{cid}/archive", f"copying {path} out of {name}",
                params={"path": path}, stream=True,
            ) as resp:  # fmt: skip
                pipe = Pipe()

                counter = Counter(progress, total)  # of the archive's bytes: what is known ahead

                async def stream() -> None:
                    async for piece in resp.content.iter_any():
                        try:
                            await asyncio.to_thread(pipe.write, piece)
                        except BrokenPipeError:
                            return  # the tar ended or was refused: the thread says which
                        counter.add(len(piece))
                    counter.tell()
                    pipe.end()

                return await _with_thread(pipe, lambda: extract(pipe, target, stat.is_dir), stream)

    async def copy_in(
        self,
        container: str,
        src: Path,
        path: str,
        progress: Progress | None = None,
        *,
        contents: bool = False,
    ) -> int:
        """Copy `src` from here into the container at `path`, by docker cp's rules (`contents`: only
        what the folder holds, as SRC/. says); what arrives is owned by root. The bytes of the
        files copied."""
        cid, name = await self._named(container)
        kind = local_kind(src)
        if kind is None:
            raise NotFound(f"No {src} here to copy.", "Check the path.")
        source_is_dir = kind == DIR and not src.is_symlink()
        there = await self.path_stat(cid, path)
        dest_kind = None if there is None else DIR if there.is_dir else FILE
        folder, base = landing(path, dest_kind, source_is_dir, src.resolve().name, contents)
        into = await self.path_stat(cid, folder)
        if into is None or not into.is_dir:
            raise NotFound(f"No folder {folder} in {name} on {self.host_name}.", "Make it first.")
        counter = Counter(progress, await asyncio.to_thread(local_total, src))
        audit_as = {"names": [name], "direction": "in", "path": path, "local": str(src)}
        with audited(self.host_name, "container.cp", [cid], **audit_as):
            pipe = Pipe()

            async def body() -> AsyncIterator[bytes]:
                while piece := await asyncio.to_thread(pipe.read, CHUNK):
                    yield piece

            async def stream() -> None:
                async with self.http.request(
                    "PUT", f"/containers/{cid}/archive", f"copying {src} into {name}",
                    params={"path": folder, "noOverwriteDirNonDir": "true"}, data=body(),
                    headers={"Content-Type": "application/x-tar"}, stream=True,
                ) as resp:  # fmt: skip
                    await resp.read()

            return await _with_thread(pipe, lambda: build(pipe, src, base, counter), stream)
