"""`berth volumes`, `berth volume rm|prune|inspect` and `berth df`: Docker volumes and disk usage."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from backends.docker import DockerBackend
from backends.docker_disk import DiskKind, PruneResult
from backends.errors import Invalid
from tui.cli.context import ALL_HOSTS, CliContext, changes_state
from tui.cli.docker import act_on_each, emit, run_docker, run_each_host
from tui.disk_words import nothing_to_prune, prune_preview, prune_question, prune_summary
from tui.format import age, human_bytes


@click.command()
@click.pass_obj
def volumes(obj: CliContext) -> None:
    """List volumes with their size and the containers using them; with --host all, every host's."""
    found, failed = run_each_host(obj, lambda b: b.volumes())
    found.sort(key=lambda hv: (hv[1].name, hv[0]))
    now = time.time()
    many = obj.host == ALL_HOSTS
    emit(
        obj,
        [v.to_json(host) for host, v in found],
        ["HOST"] * many + ["VOLUME", "DRIVER", "SIZE", "USED BY", "CREATED", "LABELS"],
        [
            [host] * many
            + [
                v.name,
                v.driver,
                "" if v.size is None else human_bytes(v.size),
                ", ".join(v.users),
                age(now - v.created) if v.created else "",
                v.labels_text,
            ]
            for host, v in found
        ],
    )
    if failed:
        sys.exit(1)


@click.group()
def volume() -> None:
    """Work on volumes."""


@volume.command("inspect")
@click.argument("name")
@click.pass_obj
def volume_inspect(obj: CliContext, name: str) -> None:
    """Print a volume's inspect document (JSON)."""
    click.echo(json.dumps(run_docker(obj, lambda b: b.inspect_volume(name)), indent=2, sort_keys=True))


@volume.command("rm")
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Remove the stopped containers using it too (a running one refuses it: stop that first).",
)
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.pass_obj
@changes_state()
def volume_rm(obj: CliContext, force: bool, names: tuple[str, ...]) -> None:
    """Remove volumes; refused, naming them, while containers use one (unless --force)."""

    async def one(backend: DockerBackend, name: str) -> tuple[dict[str, Any], str]:
        gone_with = await backend.remove_volume(name, force=force)
        line = name + (f" (with {', '.join(gone_with)})" if gone_with else "")
        return {"name": name, "removed": True, "containers_removed": gone_with}, line

    act_on_each(obj, names, one)


@volume.command("prune")
@click.option("--yes", is_flag=True, help="Do not ask (needed when not on a terminal).")
@click.pass_obj
@changes_state()
def volume_prune(obj: CliContext, yes: bool) -> None:
    """Remove the unused local volumes (named ones too), after listing each with its size."""
    host = obj.host_config(obj.load()).name
    unused = run_docker(obj, lambda b: b.disk_usage(fresh=True)).kinds["volumes"]
    if not unused.prunable:
        if obj.json:
            click.echo(json.dumps(PruneResult("volumes", ()).to_json(host), indent=2))
        else:
            click.echo(nothing_to_prune(unused, host))
        return
    if not yes:
        if obj.json or not sys.stdin.isatty():
            listed = ", ".join(prune_preview(unused))
            raise Invalid(f"The prune would remove, on {host}: {listed}.", "Add --yes to go ahead.")
        click.echo("\n".join(f"  {line}" for line in prune_preview(unused)))
        click.confirm(prune_question(unused, host), abort=True)
    result = run_docker(obj, lambda b: b.prune(unused))
    click.echo(json.dumps(result.to_json(host), indent=2) if obj.json else prune_summary(result, host))
    if result.failed:
        sys.exit(1)


@click.command()
@click.pass_obj
def df(obj: CliContext) -> None:
    """Disk usage by kind (images, containers, volumes, build cache) with what a prune gives back;
    with --host all, every host's."""
    found, failed = run_each_host(obj, _kinds)
    many = obj.host == ALL_HOSTS
    emit(
        obj,
        [kind.to_json(host) for host, kind in found],
        ["HOST"] * many + ["KIND", "COUNT", "ACTIVE", "SIZE", "RECLAIMABLE"],
        [
            [host] * many
            + [kind.kind, str(len(kind.items)), str(kind.active)]
            + [human_bytes(kind.size), human_bytes(kind.reclaimable)]
            for host, kind in found
        ],
    )
    if failed:
        sys.exit(1)


async def _kinds(backend: DockerBackend) -> list[DiskKind]:
    """The host's disk usage, kind by kind."""
    return list((await backend.disk_usage()).kinds.values())
