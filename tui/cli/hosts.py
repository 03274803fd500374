"""`berth hosts` (every host's state, probed at once) and `berth hosts add` (the inventory)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from backends.config import HOST_NAME, HostConfig, add_host
from backends.config_changes import save_host
from backends.hosts import HostState, probe_host
from backends.parse_addresses import HOST_URL
from tui.cli.context import ALL_HOSTS, CliContext, changes_state
from tui.cli.params import Parsed
from tui.format import table


def state_json(state: HostState) -> dict[str, Any]:
    """The object `berth hosts --json` prints for one host."""
    return {
        "name": state.name,
        "url": state.url,
        "state": state.state,
        "latency_ms": state.latency_ms,
        "engines": {
            e.engine: {"state": e.state, "socket": e.socket, "latency_ms": e.latency_ms, "detail": e.detail}
            for e in state.engines
        },
        "detail": state.detail,
    }


@click.group(invoke_without_command=True)
@click.pass_context
def hosts(ctx: click.Context) -> None:
    """Probe every host of the inventory (or --host's) at once and show its state and engines.

    Exits 1 when a host is not online.
    """
    if ctx.invoked_subcommand is not None:
        return
    obj: CliContext = ctx.obj
    config = obj.load()
    chosen = obj.hosts(config) if obj.host not in (None, ALL_HOSTS) else list(config.hosts)

    async def go() -> list[HostState]:
        sessions = obj.sessions(config)
        try:
            return list(await asyncio.gather(*(probe_host(sessions.get(h)) for h in chosen)))
        finally:
            await sessions.close()

    states = asyncio.run(go())
    if obj.json:
        click.echo(json.dumps([state_json(s) for s in states], indent=2))
    else:
        rows = []
        for s in states:
            engines = ", ".join(f"{e.engine} {e.state}" for e in s.engines)
            latency = f"{s.latency_ms:g} ms" if s.latency_ms is not None else ""
            rows.append([s.name, s.url, s.state, latency, engines or s.detail])
        click.echo(table(["NAME", "URL", "STATE", "LATENCY", "ENGINES"], rows))
    if any(s.state != "online" for s in states):
        sys.exit(1)


@hosts.command("add")
@click.argument("name", type=Parsed(HOST_NAME))
@click.argument("url", type=Parsed(HOST_URL.as_text(), "url"))
@click.option(
    "--identity", type=click.Path(dir_okay=False, path_type=Path), help="Private key file to log in with."
)
@click.option("--jump", metavar="HOST", help="Jump host: an inventory name or ssh://user@host[:port].")
@click.option("--read-only", is_flag=True, help="Look, never act, on this host.")
@click.pass_obj
@changes_state(on_host=False)
def hosts_add(
    obj: CliContext, name: str, url: str, identity: Path | None, jump: str | None, read_only: bool
) -> None:
    """Add host NAME at URL (`local` or ssh://user@host[:port]) to the inventory."""
    config = obj.load()
    host = HostConfig(
        name, url, identity=str(identity.expanduser()) if identity else None, jump=jump, read_only=read_only
    )
    written = save_host(add_host(config, host), host, obj.config_path)
    click.echo(f"Added {name} ({url}) to {written}.")
