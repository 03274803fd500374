"""`berth update NAME...`: pull each container's image reference and recreate the container with
the same settings when that gave a new image (a compose service through compose), swapping back
when the new one does not stay up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from backends.hosts import HostSession
from tui.cli.context import CliContext, changes_state
from tui.cli.docker import act_on_each
from tui.cli.progress import ProgressLine

if TYPE_CHECKING:
    from backends.docker import DockerBackend
    from backends.docker_pull import PullProgress


@click.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.pass_obj
@changes_state()
def update(obj: CliContext, names: tuple[str, ...]) -> None:
    """Update containers to their image's newest pull: each is recreated with the same settings
    when its image changed, and put back as it was if the new one does not stay up."""
    from backends.docker import DockerBackend
    from tui.pull_progress import pull_summary

    line = ProgressLine(obj)
    sessions: list[HostSession] = []

    async def connect(session: HostSession) -> DockerBackend:
        sessions.append(session)  # compose services are updated through the host's session
        return await DockerBackend.for_session(session)

    async def one(backend: DockerBackend, name: str) -> tuple[dict[str, Any], str]:
        def report(stage: str, pull: PullProgress | None) -> None:
            line.show(f"{name}: {stage}: {pull_summary(pull)}" if pull is not None else f"{name}: {stage}")

        try:
            result = await backend.update(name, report, session=sessions[-1])
        finally:
            line.end()
        return result.to_json(backend.host_name), result.sentence()

    act_on_each(obj, names, one, connect)
