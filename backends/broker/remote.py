"""Starting a provider on a host berth manages, over that host's SSH connection.

The host reaches the console's broker through a reverse tunnel on its own 127.0.0.1, so nothing
new listens on the network; the provider runs as long as the connection (it has a terminal, so
the host ends it when berth goes away). Its key is its own: it waits to be paired like any other.
"""

from __future__ import annotations

import shlex

from backends.audit import audited
from backends.errors import NotFound
from backends.hosts import HostSession, Spawned


async def start_provider(
    session: HostSession, broker_port: int, berth: str = "berth", workers: str = "max", name: str = ""
) -> Spawned:
    """Run `berth provider` on the session's host against the broker on our `broker_port`;
    recorded as provider.start on that host, with its workers.

    NotFound (with what to do) when the host has no `berth` command.
    """
    with audited(session.host.name, "provider.start", [name], workers=workers):
        return await _start(session, broker_port, berth, workers, name)


async def _start(session: HostSession, broker_port: int, berth: str, workers: str, name: str) -> Spawned:
    found = await session.run(["sh", "-c", f"command -v {shlex.quote(berth)}"])
    if found.returncode != 0 or not found.output.strip():
        raise NotFound(
            f"berth is not installed on {session.host.name}: `command -v {berth}` found nothing there.",
            "Install it on that host (pip install berth-console), or give the full path of its berth.",
        )
    port = await session.forward_back(broker_port)
    argv = [berth, "provider", "--broker", f"http://127.0.0.1:{port}", "--workers", workers]
    return await session.spawn([*argv, "--name", name] if name else argv)
