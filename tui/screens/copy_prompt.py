"""The copy form (`c` on a container's detail screen and on the Members pane): which way, the path
in the container or instance and the path here, read by the grammars `berth cp` uses; the copy
then runs as a job with byte progress (listed in `:jobs`, cancellable).

Copying out only reads the container, so it is allowed on a read-only host; copying in is not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.widget import Widget

from backends.config import Config, HostConfig
from backends.copying import (
    DIRECTION,
    LOCAL_PATH,
    REMOTE_PATH,
    Endpoints,
    Progress,
    local_kind,
    parse_direction,
    parse_local_path,
    parse_remote_path,
)
from backends.docker import DockerBackend
from backends.errors import Denied, Invalid
from backends.lxd import LxdBackend
from backends.lxd_files import MemberFiles
from tui.acting import read_only_flag, run_job
from tui.format import human_bytes
from tui.jobs import Job
from tui.read_only import refusal
from tui.screens.form import Field, FormScreen

CopyIn = Callable[[Path, str, Progress, bool], Awaitable[int]]
"""(local source, remote path, progress, only what the folder holds) -> bytes copied."""
CopyOut = Callable[[str, str, Progress], Awaitable[int]]
"""(remote path, local destination, progress) -> bytes copied."""


@dataclass(frozen=True)
class CopyTarget:
    """What a copy goes into or out of: a container or an instance, its host, and the two calls."""

    what: str
    """"container" or "instance", as the form says it."""
    name: str
    host: HostConfig
    copy_in: CopyIn
    copy_out: CopyOut


def container_target(backend: DockerBackend, host: HostConfig, container: str, name: str) -> CopyTarget:
    """Copies in and out of a container (`container`: its id)."""
    return CopyTarget(
        "container",
        name,
        host,
        lambda src, path, progress, contents: backend.copy_in(
            container, src, path, progress, contents=contents
        ),
        lambda path, dest, progress: backend.copy_out(container, path, dest, progress),
    )


def member_target(backend: LxdBackend, host: HostConfig, name: str) -> CopyTarget:
    """Copies in and out of a member's instance."""
    files = MemberFiles(backend)
    return CopyTarget(
        "instance",
        name,
        host,
        lambda src, path, progress, contents: files.copy_in(name, src, path, progress, contents=contents),
        lambda path, dest, progress: files.copy_out(name, path, dest, progress),
    )


def ask_copy(node: Widget, target: CopyTarget) -> None:
    """Open the copy form for `target`; once it closes, the copy runs as a job."""
    fields = [
        Field("direction", "Direction (out: from it to here; in: from here into it)", value="out",
              grammar=DIRECTION, required=True),
        Field("remote", f"Path in {target.name}", grammar=REMOTE_PATH, required=True),
        Field("local", "Path here (a folder that exists takes the copy inside it)", grammar=LOCAL_PATH,
              required=True),
    ]  # fmt: skip

    def submit(values: dict[str, str]) -> Endpoints:
        direction = parse_direction(values["direction"])
        local = parse_local_path(values["local"])
        if direction == "in":
            config = getattr(node.app, "config", None)
            why = (
                refusal(config, [target.host], flag=read_only_flag(node))
                if isinstance(config, Config)
                else None
            )
            if why:
                raise Denied(f"Direction: {why}: copying into {target.name} would change it; out is allowed.")
            if local_kind(local) is None:
                raise Invalid(f"Path here: there is no {local} to copy.", "Check the path.")
        elif local_kind(local) is None and not local.parent.is_dir():
            raise Invalid(
                f"Path here: there is no folder {local.parent}.", "Make it first, or copy elsewhere."
            )
        return Endpoints(direction, target.name, parse_remote_path(values["remote"]), local, values["local"])

    def chosen(request: Endpoints | None) -> None:
        if request is not None:
            _run_copy(node, target, request)

    title = f"Copy files · {target.what} {target.name} · {target.host.name}"
    node.app.push_screen(FormScreen(title, fields, submit, "Copy"), chosen)


def _run_copy(node: Widget, target: CopyTarget, request: Endpoints) -> None:
    """Run the copy as a job that shows the bytes copied so far (of how many, when known)."""
    outward = request.direction == "out"
    there = f"{target.name}:{request.remote}"
    source, destination = (there, str(request.local)) if outward else (str(request.local), there)

    async def work(job: Job) -> Any:
        def progress(done: int, total: int | None) -> None:
            job.progress(done, total, human_bytes(done) + (f" of {human_bytes(total)}" if total else ""))

        if outward:
            copied = await target.copy_out(request.remote, request.local_destination, progress)
        else:
            copied = await target.copy_in(request.local, request.remote, progress, request.contents)
        job.progress(copied, None, f"{human_bytes(copied)} copied")

    run_job(node, f"copy {source} to {destination}", target.host.name, work, unit="bytes",
            done=f"Copied {source} to {destination}.")  # fmt: skip
