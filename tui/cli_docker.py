"""`berth ps`, `logs`, `start`/`stop`/`restart`, `rm`, `images` and `image move`: the Docker verbs."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import click

from backends.docker import DockerBackend
from backends.errors import BerthError
from tui.cli import CliContext, cli
from tui.format import age, human_bytes, table

T = TypeVar("T")


def _run(obj: CliContext, work: Callable[[DockerBackend], Awaitable[T]], host: str | None = None) -> T:
    """Run `work` on the chosen host's Docker, closing the connection afterwards."""

    async def go() -> T:
        backend = DockerBackend.for_host(obj.host_config(host))
        try:
            return await work(backend)
        finally:
            await backend.close()

    return asyncio.run(go())


def _emit(
    obj: CliContext, rows: list[dict[str, Any]], headers: Sequence[str], cells: list[list[str]]
) -> None:
    if obj.json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(table(headers, cells))


@cli.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Show stopped containers too.")
@click.pass_obj
def ps(obj: CliContext, show_all: bool) -> None:
    """List containers (running ones first)."""
    host = obj.host_config().name
    containers = _run(obj, lambda b: b.containers(all=show_all))
    containers.sort(key=lambda c: (c.rank, c.name))
    _emit(
        obj,
        [c.to_json(host) for c in containers],
        ["NAME", "ID", "IMAGE", "STATE", "STATUS", "PORTS", "PROJECT"],
        [[c.name, c.short_id, c.image, c.state, c.status, c.ports, c.project or ""] for c in containers],
    )


@cli.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--since", metavar="DUR", help="Only lines newer than this (30s, 10m, 2h, 1d, or a time).")
@click.option("--tail", type=click.IntRange(min=0), metavar="N", help="Only the last N lines.")
@click.option("-t", "--timestamps", is_flag=True, help="Show each line's time.")
@click.argument("name")
@click.pass_obj
def logs(
    obj: CliContext, follow: bool, since: str | None, tail: int | None, timestamps: bool, name: str
) -> None:
    """Print a container's logs (stdout to stdout, stderr to stderr)."""

    async def work(backend: DockerBackend) -> None:
        target = await backend.find(name)
        async for batch in backend.logs(
            target.id, follow=follow, since=since, tail=tail, timestamps=timestamps
        ):
            out: list[str] = []
            err: list[str] = []
            for line in batch:
                text = f"{line.timestamp} {line.text}\n" if line.timestamp else line.text + "\n"
                (out if line.stream == "stdout" else err).append(text)
            if out:
                sys.stdout.write("".join(out))
                sys.stdout.flush()
            if err:
                sys.stderr.write("".join(err))
                sys.stderr.flush()

    _run(obj, work)


def _each(
    obj: CliContext, names: Sequence[str], act: Callable[[DockerBackend, str], Awaitable[None]]
) -> None:
    """Apply `act` to each named container; report each failure and exit 1 if any failed."""

    async def work(backend: DockerBackend) -> list[str]:
        failures = []
        for name in names:
            try:
                target = await backend.find(name)
                await act(backend, target.id)
                click.echo(name)
            except BerthError as exc:
                failures.append(f"{name}: {exc}")
        return failures

    failures = _run(obj, work)
    for failure in failures:
        click.echo(f"berth: {failure}", err=True)
    if failures:
        sys.exit(1)


def _action_command(action: str, summary: str) -> None:
    @cli.command(name=action, help=summary)
    @click.argument("names", nargs=-1, required=True, metavar="NAME...")
    @click.pass_obj
    def command(obj: CliContext, names: tuple[str, ...]) -> None:
        _each(obj, names, lambda backend, cid: backend.act(action, cid))


_action_command("start", "Start containers.")
_action_command("stop", "Stop containers.")
_action_command("restart", "Restart containers.")


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Remove running containers too (they are killed).")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.pass_obj
def rm(obj: CliContext, force: bool, names: tuple[str, ...]) -> None:
    """Remove containers."""
    _each(obj, names, lambda backend, cid: backend.remove(cid, force=force))


@cli.command()
@click.pass_obj
def images(obj: CliContext) -> None:
    """List images, with how many containers use each."""
    host = obj.host_config().name
    found = _run(obj, lambda b: b.images())
    found.sort(key=lambda i: i.name)
    now = time.time()
    _emit(
        obj,
        [i.to_json(host) for i in found],
        ["IMAGE", "ID", "SIZE", "CREATED", "USED BY"],
        [[i.name, i.short_id, human_bytes(i.size), age(now - i.created), str(i.used_by)] for i in found],
    )


@cli.group()
def image() -> None:
    """Work on one image."""


@image.command("move")
@click.argument("image_ref", metavar="IMAGE")
@click.option("--to", "to_host", required=True, metavar="HOST", help="Inventory host to move it to.")
@click.option("--from", "from_host", metavar="HOST", help="Inventory host it is on (default: --host).")
@click.pass_obj
def image_move(obj: CliContext, image_ref: str, to_host: str, from_host: str | None) -> None:
    """Stream an image to another host (docker save | docker load), with no registry and no temp file."""
    target_config = obj.host_config(to_host)
    show = sys.stderr.isatty() and not obj.json

    def progress(sent: int, size: int) -> None:
        if show:
            sys.stderr.write(f"\r{human_bytes(sent)} of ~{human_bytes(size)} sent")

    async def work(source: DockerBackend) -> str:
        target = DockerBackend.for_host(target_config)
        try:
            return await source.move_image(image_ref, target, progress)
        finally:
            await target.close()

    image_id = _run(obj, work, from_host)
    if show:
        sys.stderr.write("\n")
    if obj.json:
        click.echo(json.dumps({"image": image_ref, "id": image_id, "to": target_config.name}))
    else:
        click.echo(f"{image_ref} ({image_id.removeprefix('sha256:')[:12]}) is now on {target_config.name}.")
