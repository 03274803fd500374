"""`berth members` and `berth member ...`: member LXD instances, their keys, forwards, snapshots, backups."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from backends.errors import Invalid
from backends.lxd_models import ExecResult, MemberInstance, MemberSpec
from backends.parse_addresses import IP_ADDRESS, PORT
from backends.parse_keys import read_key_file
from backends.units import COUNT, MEMORY_LIMIT, SIZE
from tui.cli.context import CliContext, changes_state
from tui.cli.params import Parsed
from tui.cli.progress import ProgressLine
from tui.format import age, human_bytes, table

if TYPE_CHECKING:
    from backends.lxd import LxdBackend

T = TypeVar("T")


def _run(obj: CliContext, work: Callable[[LxdBackend], Awaitable[T]]) -> T:
    """Run `work` on the chosen host's LXD (through its SSH connection if remote), then close up."""

    from backends.lxd import LxdBackend  # loads only when a member verb runs

    return obj.run_on(LxdBackend.for_session, work)


def _say(obj: CliContext, text: str, data: dict[str, Any]) -> None:
    """Report what was done: `data` as JSON with --json, else the sentence."""
    click.echo(json.dumps(data) if obj.json else text)


@click.command()
@click.pass_obj
def members(obj: CliContext) -> None:
    """List the host's LXD instances with their member (untagged ones too)."""

    async def work(backend: LxdBackend) -> tuple[str, list[MemberInstance]]:
        return backend.host_name, await backend.members()

    host, found = _run(obj, work)
    now = time.time()
    if obj.json:
        click.echo(json.dumps([m.to_json(host) for m in found], indent=2))
        return
    click.echo(
        table(
            ["NAME", "MEMBER", "STATE", "IMAGE", "MEMORY", "SNAPSHOTS", "FORWARDS", "CREATED"],
            [
                [
                    m.name,
                    m.member or "-",
                    m.state,
                    m.image,
                    human_bytes(m.memory) if m.memory is not None else "",
                    str(m.snapshots),
                    ", ".join(f"{f.host_port}->{f.port}/{f.protocol}" for f in m.forwards),
                    age(now - m.created_at) if m.created_at else "",
                ]
                for m in found
            ],
        )
    )


@click.group()
def member() -> None:
    """Work on one member instance."""


@member.command("create")
@click.argument("name")
@click.option("--member", "who", required=True, metavar="WHO", help="Whose instance it is.")
@click.option("--image", required=True, metavar="ALIAS", help="Image alias or fingerprint on the host.")
@click.option(
    "--key",
    "key_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="SSH public key file for root (repeatable).",
)
@click.option("--cpu", type=Parsed(COUNT), metavar="N", help="CPU limit (limits.cpu).")
@click.option(
    "--memory",
    type=Parsed(MEMORY_LIMIT.as_text()),
    metavar="SIZE",
    help="Memory limit, e.g. 512MiB or 50% (limits.memory).",
)
@click.option("--disk", type=Parsed(SIZE.as_text()), metavar="SIZE", help="Root disk size, e.g. 2GiB.")
@click.option("--contact", metavar="TEXT", help="How to reach the member.")
@click.option("--profile", default="default", show_default=True, help="LXD profile to create it with.")
@click.pass_obj
@changes_state()
def member_create(
    obj: CliContext,
    name: str,
    who: str,
    image: str,
    key_files: tuple[Path, ...],
    cpu: int | None,
    memory: str | None,
    disk: str | None,
    contact: str | None,
    profile: str,
) -> None:
    """Create and start a member's instance with their SSH keys installed for root."""
    keys = tuple(line for path in key_files for line in read_key_file(path))
    spec = MemberSpec(name, who, image, keys, contact, profile, cpu, memory, disk)

    line = ProgressLine(obj)

    async def work(backend: LxdBackend) -> tuple[str, MemberInstance]:
        return backend.host_name, await backend.create(spec, line.show if line.live else None)

    host, made = _run(obj, work)
    line.end()
    _say(obj, f"{made.name} is {made.state.lower()} for {who} on {host}.", made.to_json(host))


@member.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD...")
@click.pass_obj
@changes_state()
def member_exec(obj: CliContext, name: str, command: tuple[str, ...]) -> None:
    """Run a command in the instance; print its output and exit with its exit code."""

    async def work(backend: LxdBackend) -> ExecResult:
        return await backend.exec(name, list(command))

    result = _run(obj, work)
    if obj.json:
        click.echo(json.dumps({"code": result.code, "stdout": result.stdout, "stderr": result.stderr}))
    else:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
    sys.exit(result.code)


@member.command("snapshot")
@click.argument("name")
@click.argument("snap", required=False)
@click.option("--stateful", is_flag=True, help="Save the running state too (needs CRIU on the host).")
@click.pass_obj
@changes_state()
def member_snapshot(obj: CliContext, name: str, snap: str | None, stateful: bool) -> None:
    """Take a snapshot (named snap-DATE-TIME unless SNAP is given)."""
    taken = _run(obj, lambda b: b.snapshot(name, snap, stateful=stateful))
    _say(obj, taken, {"name": name, "snapshot": taken})


@member.command("restore")
@click.argument("name")
@click.argument("snap")
@click.pass_obj
@changes_state()
def member_restore(obj: CliContext, name: str, snap: str) -> None:
    """Put the instance back as it was in snapshot SNAP."""
    _run(obj, lambda b: b.restore(name, snap))
    _say(obj, f"{name} is restored to {snap}.", {"name": name, "snapshot": snap})


@member.command("backup")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
@changes_state()
def member_backup(obj: CliContext, name: str, file: Path) -> None:
    """Export the instance with its snapshots to FILE (a tarball `berth member import` takes)."""
    line = ProgressLine(obj)
    _run(obj, lambda b: b.backup(name, file, lambda done: line.show(f"{human_bytes(done)} written")))
    line.end()
    size = file.stat().st_size
    _say(
        obj,
        f"{name} is backed up to {file} ({human_bytes(size)}).",
        {"name": name, "file": str(file), "bytes": size},
    )


@member.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", metavar="NAME", help="Name for the new instance (default: the one backed up).")
@click.pass_obj
@changes_state()
def member_import(obj: CliContext, file: Path, name: str | None) -> None:
    """Make an instance from a backup FILE; it is left stopped."""
    made = _run(obj, lambda b: b.import_backup(file, name))
    without = f"; without the forward(s) {'; '.join(made.dropped)}" if made.dropped else ""
    _say(
        obj,
        f"{made.name} is imported from {file} (stopped){without}.",
        {"name": made.name, "file": str(file), "dropped_forwards": list(made.dropped)},
    )


@member.command("forward")
@click.argument("name")
@click.argument("host_port", type=Parsed(PORT), metavar="HOSTPORT")
@click.argument("port", type=Parsed(PORT))
@click.option("--udp", is_flag=True, help="Forward UDP instead of TCP.")
@click.option(
    "--listen",
    type=Parsed(IP_ADDRESS),
    default="0.0.0.0",
    show_default=True,
    metavar="ADDR",
    help="Host address to listen on.",
)
@click.pass_obj
@changes_state()
def member_forward(obj: CliContext, name: str, host_port: int, port: int, udp: bool, listen: str) -> None:
    """Forward HOSTPORT on the host to PORT inside the instance."""
    protocol = "udp" if udp else "tcp"
    made = _run(obj, lambda b: b.add_forward(name, host_port, port, protocol=protocol, listen_address=listen))
    text = f"{listen}:{host_port}/{protocol} -> {name}:{port} ({made.device})"
    _say(obj, text, {"name": name, "device": made.device, "protocol": protocol, "listen_address": listen,
                     "host_port": host_port, "port": port})  # fmt: skip


@member.command("keys")
@click.argument("name")
@click.option(
    "--add",
    "add_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Add the keys in FILE.",
)
@click.pass_obj
def member_keys(obj: CliContext, name: str, add_file: Path | None) -> None:
    """List root's SSH keys in the instance; with --add, add a key file's keys first."""
    if add_file:
        obj.refuse_if_read_only()  # listing keys is looking; adding one is not
    adding = read_key_file(add_file) if add_file else []

    async def work(backend: LxdBackend) -> list[str]:
        for line in adding:
            await backend.add_key(name, line)
        return await backend.keys(name)

    keys = _run(obj, work)
    click.echo(json.dumps(keys) if obj.json else "\n".join(keys))


@member.command("cp")
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.pass_obj
def member_cp(obj: CliContext, source: str, destination: str) -> None:
    """Copy files between an instance and here, as `berth cp` does for containers: NAME:PATH on
    one side (the instance's name), a path here on the other."""
    from tui.cli.cp import copy_files

    copy_files(obj, source, destination, "member")


@member.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask (needed when not on a terminal).")
@click.pass_obj
@changes_state()
def member_delete(obj: CliContext, name: str, yes: bool) -> None:
    """Delete the instance and its snapshots (stopping it first)."""
    if not yes:
        if not sys.stdin.isatty():
            raise Invalid(f"Deleting {name} destroys it with its snapshots.", "Add --yes to go ahead.")
        click.confirm(f"Delete {name} with all its snapshots?", abort=True)
    _run(obj, lambda b: b.delete(name))
    _say(obj, f"{name} is deleted.", {"name": name, "deleted": True})
