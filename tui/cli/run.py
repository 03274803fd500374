"""`berth run`: a new container from an image, as `docker run -d` makes one."""

from __future__ import annotations

import json

import click

from backends.docker import DockerBackend
from backends.docker_run import RunSpec
from backends.parse_container import (
    CONTAINER_NAME,
    CPUS,
    MOUNT,
    PORT_MAPPING,
    RESTART_POLICY,
    Mount,
    PortMapping,
    RestartPolicy,
)
from backends.parse_images import IMAGE_REF
from backends.parse_networks import NETWORK_NAME
from backends.parse_pairs import ENV_PAIR
from backends.units import SIZE
from tui.cli.context import CliContext, changes_state
from tui.cli.params import Parsed


@click.command(context_settings={"allow_interspersed_args": False})  # what follows IMAGE is its command
@click.option(
    "--name",
    type=Parsed(CONTAINER_NAME),
    metavar="NAME",
    help="The container's name (default: Docker picks one).",
)
@click.option(
    "-e", "--env", "env", multiple=True, type=Parsed(ENV_PAIR), metavar="K=V", help="Set a variable."
)
@click.option(
    "-p", "--publish", "ports", multiple=True, type=Parsed(PORT_MAPPING), metavar="MAP",
    help="Publish a port: 8080:80, 127.0.0.1:8080:80, [::1]:8080:80, 5353:53/udp, 80 (any free host port).",
)  # fmt: skip
@click.option(
    "-v", "--volume", "mounts", multiple=True, type=Parsed(MOUNT), metavar="MOUNT",
    help="Mount a volume or host path: data:/data, /srv/site:/site:ro.",
)  # fmt: skip
@click.option("--network", type=Parsed(NETWORK_NAME), metavar="NET", help="Network to attach it to.")
@click.option(
    "--restart",
    type=Parsed(RESTART_POLICY),
    metavar="POLICY",
    help="no, always, unless-stopped, on-failure[:N].",
)
@click.option("-m", "--memory", type=Parsed(SIZE), metavar="SIZE", help="Memory limit: 64MiB, 1GB...")
@click.option("--cpus", type=Parsed(CPUS), metavar="N", help="CPU limit in CPUs: 0.5, 2...")
@click.argument("image", type=Parsed(IMAGE_REF))
@click.argument("command", nargs=-1, metavar="[CMD]...")
@click.pass_obj
@changes_state()
def run(
    obj: CliContext,
    name: str | None,
    env: tuple[tuple[str, str], ...],
    ports: tuple[PortMapping, ...],
    mounts: tuple[Mount, ...],
    network: str | None,
    restart: RestartPolicy | None,
    memory: int | None,
    cpus: int | None,
    image: str,
    command: tuple[str, ...],
) -> None:
    """Run a container from IMAGE on --host (pulled first if the host lacks it); prints its id."""
    spec = RunSpec(image, name or "", command, env, ports, mounts, network or "", restart, memory, cpus)

    async def work(backend: DockerBackend) -> tuple[str, str]:
        made = await backend.run(spec)
        return made, str((await backend.inspect(made)).get("Name", "")).lstrip("/")

    container_id, container_name = obj.run_on(DockerBackend.for_session, work)
    if obj.json:
        click.echo(json.dumps({"id": container_id, "name": container_name, "image": image}))
    else:
        click.echo(container_id)
