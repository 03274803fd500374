"""`berth update NAME...`: pull each container's image reference and recreate the container with
the same settings when that gave a new image (a compose service through compose), swapping back
when the new one does not stay up."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from backends.errors import BerthError
from tui.cli.context import CliContext, changes_state

if TYPE_CHECKING:
    from backends.docker import DockerBackend
    from backends.docker_pull import PullProgress
    from backends.hosts import HostSession


@click.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.pass_obj
@changes_state()
def update(obj: CliContext, names: tuple[str, ...]) -> None:
    """Update containers to their image's newest pull: each is recreated with the same settings
    when its image changed, and put back as it was if the new one does not stay up."""
    from backends.docker import DockerBackend
    from tui.pull_progress import pull_summary

    live = sys.stderr.isatty() and not obj.json
    sessions: list[HostSession] = []

    async def connect(session: HostSession) -> DockerBackend:
        sessions.append(session)  # compose services are updated through the host's session
        return await DockerBackend.for_session(session)

    async def work(backend: DockerBackend) -> tuple[list[dict[str, Any]], list[str]]:
        done: list[dict[str, Any]] = []
        failures: list[str] = []
        for name in names:

            def report(stage: str, pull: PullProgress | None, name: str = name) -> None:
                if live:
                    detail = f"{stage}: {pull_summary(pull)}" if pull is not None else stage
                    sys.stderr.write(f"\r\x1b[2K{name}: {detail}")
                    sys.stderr.flush()

            try:
                result = await backend.update(name, report, session=sessions[-1])
            except BerthError as exc:
                said = exc.for_cli()  # most sentences name the container already
                failures.append(said if said.startswith(f"{name} ") else f"{name}: {said}")
                continue
            finally:
                if live:
                    sys.stderr.write("\r\x1b[2K")
            done.append(result.to_json(backend.host_name))
            if not obj.json:
                click.echo(result.sentence())
        return done, failures

    done, failures = obj.run_on(connect, work)
    if obj.json:
        click.echo(json.dumps(done, indent=2))
    for failure in failures:
        click.echo(f"berth: {failure}", err=True)
    if failures:
        sys.exit(1)
