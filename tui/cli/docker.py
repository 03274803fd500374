"""`berth ps`, `logs`, `start`/`stop`/`restart`, `rm`, `images` and `image move`: the Docker verbs."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import click

from backends.config import HostConfig
from backends.docker import DockerBackend
from backends.docker_models import ContainerInfo
from backends.errors import BerthError
from backends.hosts import HostSession
from tui.cli.context import ALL_HOSTS, CliContext, changes_state, on_host
from tui.cli.progress import ProgressLine
from tui.format import age, human_bytes, table

T = TypeVar("T")
R = TypeVar("R")


def run_docker(obj: CliContext, work: Callable[[DockerBackend], Awaitable[T]], host: str | None = None) -> T:
    """Run `work` on the chosen host's Docker, closing the connections afterwards."""
    return obj.run_on(DockerBackend.for_session, work, host)


def run_each_host(
    obj: CliContext, work: Callable[[DockerBackend], Awaitable[list[R]]]
) -> tuple[list[tuple[str, R]], bool]:
    """Run `work` on every host --host chose, concurrently; report hosts that failed on stderr.

    Returns the (host, item) pairs of the hosts that answered and whether any failed (one host
    only: its error is raised instead).
    """

    async def go() -> list[tuple[str, list[R] | BerthError]]:
        config = obj.load()
        sessions = obj.sessions(config)
        hosts = obj.hosts(config)

        async def one(host: HostConfig) -> tuple[str, list[R] | BerthError]:
            try:
                return host.name, await on_host(sessions, host, DockerBackend.for_session, work)
            except BerthError as exc:
                return host.name, exc

        try:
            return list(await asyncio.gather(*(one(h) for h in hosts)))
        finally:
            await sessions.close()

    results = asyncio.run(go())
    failed = [(name, r) for name, r in results if isinstance(r, BerthError)]
    if failed and len(results) == 1:
        raise failed[0][1]
    for name, error in failed:
        click.echo(f"berth: {name}: {error.for_cli()}", err=True)
    return [(name, item) for name, r in results if not isinstance(r, BerthError) for item in r], bool(failed)


def emit(
    obj: CliContext, rows: list[dict[str, Any]], headers: Sequence[str], cells: list[list[str]]
) -> None:
    """Print `rows` as JSON with --json, else `cells` as a table under `headers`."""
    if obj.json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(table(headers, cells))


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Show stopped containers too.")
@click.pass_obj
def ps(obj: CliContext, show_all: bool) -> None:
    """List containers (running ones first); with --host all, every host's, with a host column."""
    found, failed = run_each_host(obj, lambda b: b.containers(all=show_all))
    found.sort(key=lambda hc: (hc[1].rank, hc[1].name, hc[0]))
    many = obj.host == ALL_HOSTS
    emit(
        obj,
        [c.to_json(host) for host, c in found],
        ["HOST"] * many + ["NAME", "ID", "IMAGE", "STATE", "STATUS", "PORTS", "PROJECT"],
        [
            [host] * many + [c.name, c.short_id, c.image, c.state, c.status, c.ports, c.project or ""]
            for host, c in found
        ],
    )
    if failed:
        sys.exit(1)


@click.command()
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

    run_docker(obj, work)


def act_on_each(
    obj: CliContext,
    names: Sequence[str],
    act: Callable[[DockerBackend, str], Awaitable[tuple[dict[str, Any], str]]],
    connect: Callable[[HostSession], Awaitable[DockerBackend]] = DockerBackend.for_session,
) -> None:
    """Run `act(backend, name)` on each of `names` in turn: it returns what the thing was (the
    JSON object printed with --json) and its line. A refusal does not stop the others: it is
    said on stderr (after the name, unless its sentence starts with it), and the exit is 1 if
    any was refused. `connect` reaches the host's Docker (one that keeps the session, say)."""

    async def work(backend: DockerBackend) -> tuple[list[dict[str, Any]], list[str]]:
        done: list[dict[str, Any]] = []
        failures: list[str] = []
        for name in names:
            try:
                document, line = await act(backend, name)
            except BerthError as exc:
                said = exc.for_cli()
                failures.append(said if said.startswith(f"{name} ") else f"{name}: {said}")
                continue
            done.append(document)
            if not obj.json:
                click.echo(line)
        return done, failures

    done, failures = obj.run_on(connect, work)
    if obj.json:
        click.echo(json.dumps(done, indent=2))
    for failure in failures:
        click.echo(f"berth: {failure}", err=True)
    if failures:
        sys.exit(1)


def _each(
    obj: CliContext, names: Sequence[str], act: Callable[[DockerBackend, ContainerInfo], Awaitable[None]]
) -> None:
    """Apply `act` to each named container (found by name or id)."""

    async def one(backend: DockerBackend, name: str) -> tuple[dict[str, Any], str]:
        container = await backend.find(name)
        await act(backend, container)
        return {"name": container.name, "id": container.id}, name

    act_on_each(obj, names, one)


def _action_command(action: str, summary: str) -> click.Command:
    @click.command(name=action, help=summary)
    @click.argument("names", nargs=-1, required=True, metavar="NAME...")
    @click.pass_obj
    @changes_state()
    def command(obj: CliContext, names: tuple[str, ...]) -> None:
        _each(obj, names, lambda backend, c: backend.act(action, c.id, name=c.name))

    return command


start = _action_command("start", "Start containers.")
stop = _action_command("stop", "Stop containers.")
restart = _action_command("restart", "Restart containers.")


@click.command()
@click.option("-f", "--force", is_flag=True, help="Remove running containers too (they are killed).")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.pass_obj
@changes_state()
def rm(obj: CliContext, force: bool, names: tuple[str, ...]) -> None:
    """Remove containers."""
    _each(obj, names, lambda backend, c: backend.remove(c.id, name=c.name, force=force))


@click.command()
@click.pass_obj
def images(obj: CliContext) -> None:
    """List images, with how many containers use each; with --host all, every host's."""
    found, failed = run_each_host(obj, lambda b: b.images())
    found.sort(key=lambda hi: (hi[1].name, hi[0]))
    now = time.time()
    many = obj.host == ALL_HOSTS
    emit(
        obj,
        [i.to_json(host) for host, i in found],
        ["HOST"] * many + ["IMAGE", "ID", "SIZE", "CREATED", "USED BY"],
        [
            [host] * many + [i.name, i.short_id, human_bytes(i.size), age(now - i.created), str(i.used_by)]
            for host, i in found
        ],
    )
    if failed:
        sys.exit(1)


@click.group()
def image() -> None:
    """Work on one image."""


@image.command("move")
@click.argument("image_ref", metavar="IMAGE")
@click.option("--to", "to_host", required=True, metavar="HOST", help="Inventory host to move it to.")
@click.option("--from", "from_host", metavar="HOST", help="Inventory host it is on (default: --host).")
@click.pass_obj
def image_move(obj: CliContext, image_ref: str, to_host: str, from_host: str | None) -> None:
    """Stream an image to another host (docker save | docker load), with no registry and no temp file."""
    config = obj.load()
    target_config = obj.host_config(config, to_host)
    source_config = obj.host_config(config, from_host)
    obj.refuse_if_read_only([target_config])  # the source is only read
    line = ProgressLine(obj)

    def progress(sent: int, size: int) -> None:
        line.show(f"{human_bytes(sent)} of ~{human_bytes(size)} sent")

    async def go() -> str:
        sessions = obj.sessions(config)
        try:
            source, target = await asyncio.gather(
                DockerBackend.for_session(sessions.get(source_config)),
                DockerBackend.for_session(sessions.get(target_config)),
            )
            try:
                return await source.move_image([image_ref], target, progress)
            finally:
                await asyncio.gather(source.close(), target.close())
        finally:
            await sessions.close()

    image_id = asyncio.run(go())
    line.end()
    if obj.json:
        click.echo(json.dumps({"image": image_ref, "id": image_id, "to": target_config.name}))
    else:
        click.echo(f"{image_ref} ({image_id.removeprefix('sha256:')[:12]}) is now on {target_config.name}.")
