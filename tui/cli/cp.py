"""`berth cp SRC DST` and `berth member cp SRC DST`: files in and out of a container or a member's
instance, `NAME:PATH` on one side and a path here on the other, by docker cp's rules."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import click

from backends.copying import Endpoints, Progress, parse_endpoints
from tui.cli.context import CliContext
from tui.cli.progress import ProgressLine
from tui.format import human_bytes

if TYPE_CHECKING:
    from backends.docker import DockerBackend
    from backends.lxd import LxdBackend


def copy_files(obj: CliContext, source: str, destination: str, engine: str) -> None:
    """Run one copy on the chosen host's Docker ("container") or LXD ("member"), then say what it did."""
    ends = parse_endpoints(source, destination, engine)
    if ends.direction == "in":
        obj.refuse_if_read_only()  # copying out only reads the container; copying in changes it
    line = ProgressLine(obj)

    def progress(done: int, total: int | None) -> None:
        line.show(f"{human_bytes(done)}{f' of {human_bytes(total)}' if total else ''} copied")

    if engine == "container":
        from backends.docker import DockerBackend

        copied = obj.run_on(DockerBackend.for_session, lambda b: _docker(b, ends, progress))
    else:
        from backends.lxd import LxdBackend

        copied = obj.run_on(LxdBackend.for_session, lambda b: _member(b, ends, progress))
    line.end()
    if obj.json:
        click.echo(
            json.dumps({"from": source, "to": destination, "direction": ends.direction, "bytes": copied})
        )
    else:
        click.echo(f"Copied {human_bytes(copied)} from {source} to {destination}.")


def _docker(backend: DockerBackend, ends: Endpoints, progress: Progress | None) -> Awaitable[int]:
    if ends.direction == "out":
        return backend.copy_out(ends.name, ends.remote, ends.local_destination, progress)
    return backend.copy_in(ends.name, ends.local, ends.remote, progress, contents=ends.contents)


def _member(backend: LxdBackend, ends: Endpoints, progress: Progress | None) -> Awaitable[int]:
    from backends.lxd_files import MemberFiles

    files = MemberFiles(backend)
    if ends.direction == "out":
        return files.copy_out(ends.name, ends.remote, ends.local_destination, progress)
    return files.copy_in(ends.name, ends.local, ends.remote, progress, contents=ends.contents)


@click.command("cp")
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.pass_obj
def cp(obj: CliContext, source: str, destination: str) -> None:
    """Copy files between a container and here, streamed: `berth cp NAME:PATH DEST` copies out,
    `berth cp SRC NAME:PATH` copies in (docker cp's rules: into a folder that exists, else under
    the name given; SRC/. copies what the folder holds)."""
    copy_files(obj, source, destination, "container")
