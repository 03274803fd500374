"""`berth pull REF` and `berth login REGISTRY`: images from registries, with the docker CLI's
credentials (`~/.docker/config.json` or `$DOCKER_CONFIG`, and its credential helpers)."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

import click

from backends.errors import Invalid
from backends.parse_images import IMAGE_REF
from tui.cli.context import CliContext, changes_state
from tui.cli.params import Parsed

if TYPE_CHECKING:
    from backends.docker import DockerBackend
    from backends.docker_pull import PullProgress

REDRAW_SECONDS = 0.1
"""How often the terminal's layer lines are drawn again while a pull runs."""


class LayerBoard:
    """A pull's layer lines and summary drawn on a terminal (stderr), redrawn in place."""

    def __init__(self) -> None:
        self.drawn = 0
        self.last = 0.0

    def draw(self, progress: PullProgress, *, force: bool = False) -> None:
        """Draw the lines again (at most every REDRAW_SECONDS unless `force`)."""
        from tui.pull_progress import layer_lines, pull_summary

        now = time.monotonic()
        if not force and now - self.last < REDRAW_SECONDS:
            return
        self.last = now
        lines = [*layer_lines(progress), pull_summary(progress)]
        up = f"\x1b[{self.drawn}F" if self.drawn else ""  # to the first line drawn before
        sys.stderr.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        sys.stderr.flush()
        self.drawn = len(lines)


@click.command()
@click.argument("ref", metavar="REF", type=Parsed(IMAGE_REF, "REF"))
@click.pass_obj
@changes_state()
def pull(obj: CliContext, ref: str) -> None:
    """Pull an image with the docker CLI's registry credentials; its layers' progress on stderr
    (live on a terminal, else a line a layer at the end). Ctrl-C stops the pull."""
    from backends.docker import DockerBackend, short
    from backends.docker_pull import PullProgress
    from tui.pull_progress import layer_lines

    board = LayerBoard() if sys.stderr.isatty() else None
    seen = PullProgress(ref)

    def report(progress: PullProgress) -> None:
        nonlocal seen
        seen = progress
        if board is not None:
            board.draw(progress)

    async def work(backend: DockerBackend) -> str:
        return await backend.pull(ref, report)

    def show_layers() -> None:
        if board is not None:
            board.draw(seen, force=True)
        else:
            for line in layer_lines(seen):
                click.echo(line, err=True)

    try:
        image_id = obj.run_on(DockerBackend.for_session, work)
    except KeyboardInterrupt:
        # The pull was cancelled inside and said how it ended (the engine may have finished).
        show_layers()
        click.echo(f"berth: {seen.stopped or f'Stopped pulling {ref}.'}", err=True)
        sys.exit(130)
    host = obj.host_config(obj.load()).name
    show_layers()
    if obj.json:
        layers = [
            {"id": layer.layer, "status": layer.status, "size": layer.size} for layer in seen.layers.values()
        ]
        click.echo(json.dumps({"ref": ref, "id": image_id, "host": host, "layers": layers}))
    else:
        click.echo(f"{ref} is {short(image_id)} on {host}.")


@click.command()
@click.argument("registry")
@click.option("-u", "--username", help="The user to log in as (asked on the terminal if not given).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from stdin (else it is asked on the terminal, not echoed).",
)
@click.pass_obj
def login(obj: CliContext, registry: str, username: str | None, password_stdin: bool) -> None:
    """Log in to an image registry: the engine of --host checks the credentials, then they are
    kept as `docker login` keeps them (the credential helper, else config.json)."""
    from backends.docker import DockerBackend
    from backends.registry_auth import registry_name

    if username is None:
        if not sys.stdin.isatty():
            raise Invalid("Give the username with --username.")
        username = click.prompt("Username", err=True)
    if password_stdin:
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, err=True)
    else:
        raise Invalid("Give the password on stdin with --password-stdin.")

    async def work(backend: DockerBackend) -> str:
        return await backend.login(registry, username, password)

    where = obj.run_on(DockerBackend.for_session, work)
    registry = registry_name(registry)
    if obj.json:
        click.echo(json.dumps({"registry": registry, "username": username, "stored": where}))
    else:
        click.echo(f"Logged in to {registry} as {username}; the credentials are in {where}.")
