"""Hosts berth manages and how to reach their engines.

A host is `local` or `ssh://user@host[:port]`. For a local host the Docker and LXD unix sockets are
probed where they usually live (or where the inventory says); each probe is one small HTTP request
on the socket, so the header can say which engines are up without loading an SDK.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from backends.config import HostConfig

DOCKER_SOCKETS = ("/var/run/docker.sock",)
LXD_SOCKETS = (
    "/var/lib/lxd/unix.socket",
    "/var/snap/lxd/common/lxd/unix.socket",
    "/var/lib/incus/unix.socket",
)
PROBE_TIMEOUT = 2.0


@dataclass
class EngineState:
    """What a probe found for one engine on one host."""

    engine: str
    state: str  # "up", "down" (socket there, no answer) or "absent" (no socket)
    socket: str | None = None
    latency_ms: float | None = None
    detail: str = ""


@dataclass
class HostState:
    """A host's reachability and its engines, as last probed."""

    name: str
    url: str
    state: str  # "online", "offline", "unsupported"
    engines: list[EngineState] = field(default_factory=list)
    detail: str = ""


def docker_socket_candidates(host: HostConfig) -> list[str]:
    """Where the Docker socket may be for `host`: the inventory's, then `DOCKER_HOST`, then default."""
    if host.docker_socket:
        return [host.docker_socket]
    env = os.environ.get("DOCKER_HOST", "")
    if env.startswith("unix://"):
        return [env.removeprefix("unix://")]
    return list(DOCKER_SOCKETS)


def lxd_socket_candidates(host: HostConfig) -> list[str]:
    """Where the LXD socket may be for `host`: the inventory's, then `LXD_DIR`, then the defaults."""
    if host.lxd_socket:
        return [host.lxd_socket]
    env = os.environ.get("LXD_DIR")
    return [str(Path(env) / "unix.socket")] if env else list(LXD_SOCKETS)


async def _http_status(socket_path: str, request_path: str) -> int:
    reader, writer = await asyncio.open_unix_connection(socket_path)
    try:
        writer.write(f"GET {request_path} HTTP/1.0\r\nHost: berth\r\n\r\n".encode())
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
    parts = status_line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


async def probe_engine(engine: str, candidates: list[str], request_path: str) -> EngineState:
    """Ping the first socket of `candidates` that exists with one GET of `request_path`."""
    for socket_path in candidates:
        if not Path(socket_path).exists():
            continue
        started = time.perf_counter()
        try:
            status = await asyncio.wait_for(_http_status(socket_path, request_path), PROBE_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            return EngineState(engine, "down", socket_path, detail=reason)
        latency = (time.perf_counter() - started) * 1000
        if status == 200:
            return EngineState(engine, "up", socket_path, round(latency, 1))
        return EngineState(engine, "down", socket_path, detail=f"HTTP {status}")
    return EngineState(engine, "absent", detail="no socket at " + ", ".join(candidates))


async def probe_host(host: HostConfig) -> HostState:
    """Probe a host's engines concurrently and sum them up as one state."""
    if not host.is_local:
        return HostState(
            host.name,
            host.url,
            "unsupported",
            detail="SSH connections are not built yet (issue 4).",
        )
    engines = list(
        await asyncio.gather(
            probe_engine("docker", docker_socket_candidates(host), "/_ping"),
            probe_engine("lxd", lxd_socket_candidates(host), "/1.0"),
        )
    )
    state = "online" if any(e.state == "up" for e in engines) else "offline"
    return HostState(host.name, host.url, state, engines)
