"""`berth networks` and `berth network create|rm|connect|disconnect|prune|inspect`: Docker networks."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from backends.docker import DockerBackend
from backends.errors import Invalid
from backends.parse_networks import GATEWAY, NETWORK_NAME, SUBNET
from tui.cli.context import ALL_HOSTS, CliContext, changes_state
from tui.cli.docker import act_on_each, emit, run_docker, run_each_host
from tui.cli.params import Parsed


@click.command()
@click.pass_obj
def networks(obj: CliContext) -> None:
    """List networks with their subnets and the containers attached; with --host all, every host's."""
    found, failed = run_each_host(obj, lambda b: b.networks())
    found.sort(key=lambda hn: (hn[1].name, hn[0]))
    many = obj.host == ALL_HOSTS
    emit(
        obj,
        [n.to_json(host) for host, n in found],
        ["HOST"] * many + ["NETWORK", "ID", "DRIVER", "SCOPE", "SUBNET", "CONTAINERS", "FLAGS"],
        [
            [host] * many
            + [n.name, n.id[:12], n.driver, n.scope, n.addresses, ", ".join(n.containers), n.flags]
            for host, n in found
        ],
    )
    if failed:
        sys.exit(1)


@click.group()
def network() -> None:
    """Work on networks."""


def _say(obj: CliContext, text: str, document: dict[str, Any]) -> None:
    click.echo(json.dumps(document, indent=2) if obj.json else text)


@network.command("inspect")
@click.argument("name")
@click.pass_obj
def network_inspect(obj: CliContext, name: str) -> None:
    """Print a network's inspect document (JSON)."""
    click.echo(json.dumps(run_docker(obj, lambda b: b.inspect_network(name)), indent=2, sort_keys=True))


@network.command("create")
@click.argument("name", type=Parsed(NETWORK_NAME))
@click.option(
    "-d",
    "--driver",
    default="bridge",
    show_default=True,
    metavar="DRIVER",
    help="bridge, macvlan, ipvlan, overlay or a plugin's.",
)
@click.option(
    "--subnet", type=Parsed(SUBNET), metavar="CIDR", help="Its addresses: 10.20.0.0/24, fd00:20::/64..."
)
@click.option(
    "--gateway", type=Parsed(GATEWAY), metavar="IP", help="Its gateway, in the subnet (needs --subnet)."
)
@click.option(
    "--internal", is_flag=True, help="No way out of the network: its containers reach only each other."
)
@click.option("--attachable", is_flag=True, help="Containers may be attached by hand (overlay networks).")
@click.pass_obj
@changes_state()
def network_create(
    obj: CliContext,
    name: str,
    driver: str,
    subnet: str | None,
    gateway: str | None,
    internal: bool,
    attachable: bool,
) -> None:
    """Make a network; prints its id."""

    async def work(backend: DockerBackend) -> str:
        return await backend.create_network(
            name, driver, subnet=subnet, gateway=gateway, internal=internal, attachable=attachable
        )

    made = run_docker(obj, work)
    _say(obj, made, {"name": name, "id": made})


@network.command("rm")
@click.argument("names", nargs=-1, required=True, metavar="NETWORK...")
@click.pass_obj
@changes_state()
def network_rm(obj: CliContext, names: tuple[str, ...]) -> None:
    """Remove networks; refused, naming them, while containers (stopped ones too) are attached."""

    async def one(backend: DockerBackend, name: str) -> tuple[dict[str, Any], str]:
        gone = await backend.remove_network(name)
        return {"name": gone.name, "id": gone.id, "removed": True}, gone.name

    act_on_each(obj, names, one)


@network.command("connect")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    metavar="NAME",
    help="Another name for it on the network (repeatable).",
)
@click.pass_obj
@changes_state()
def network_connect(obj: CliContext, network_name: str, container: str, aliases: tuple[str, ...]) -> None:
    """Attach a container to a network."""
    run_docker(obj, lambda b: b.connect_network(network_name, container, aliases=aliases))
    document = {"network": network_name, "container": container, "connected": True, "aliases": list(aliases)}
    _say(obj, f"{container} is attached to {network_name}.", document)


@network.command("disconnect")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
@click.option("-f", "--force", is_flag=True, help="Detach it even if the engine thinks it is in use.")
@click.pass_obj
@changes_state()
def network_disconnect(obj: CliContext, network_name: str, container: str, force: bool) -> None:
    """Detach a container from a network."""
    run_docker(obj, lambda b: b.disconnect_network(network_name, container, force=force))
    document = {"network": network_name, "container": container, "connected": False}
    _say(obj, f"{container} is no longer attached to {network_name}.", document)


@network.command("prune")
@click.option("--yes", is_flag=True, help="Do not ask (needed when not on a terminal).")
@click.pass_obj
@changes_state()
def network_prune(obj: CliContext, yes: bool) -> None:
    """Remove the networks no container is attached to (the engine's own are kept), after listing them."""
    host = obj.host_config(obj.load()).name
    unused = run_docker(obj, lambda b: b.unused_networks())
    names = [n.name for n in unused]
    if not unused:
        _say(
            obj, f"No unused networks on {host}: nothing to prune.", {"host": host, "removed": [], "kept": []}
        )
        return
    if not yes:
        if obj.json or not sys.stdin.isatty():
            raise Invalid(f"The prune would remove, on {host}: {', '.join(names)}.", "Add --yes to go ahead.")
        click.echo("\n".join(f"  {name}" for name in names))
        click.confirm(f"Remove these {len(names)} network(s) on {host}?", abort=True)
    removed, kept = run_docker(obj, lambda b: b.prune_networks(unused))
    text = f"Removed {len(removed)} network(s) on {host}" + (f": {', '.join(removed)}." if removed else ".")
    if kept:
        text += f" Kept {', '.join(kept)}: in use or gone since the list was read."
    _say(obj, text, {"host": host, "removed": removed, "kept": kept})
