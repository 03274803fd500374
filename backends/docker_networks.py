"""Docker networks: list, inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends.docker_calls import EngineCalls
from backends.docker_logs import epoch_seconds


@dataclass(frozen=True)
class NetworkInfo:
    """One network (an entry of `GET /networks`); `containers`: the names of those attached."""

    id: str
    name: str
    driver: str
    scope: str
    subnets: tuple[str, ...]
    gateways: tuple[str, ...]
    internal: bool
    attachable: bool
    created: float
    containers: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> NetworkInfo:
        """Build from the Engine API's list or inspect object."""
        configs = (raw.get("IPAM") or {}).get("Config") or ()
        attached = (raw.get("Containers") or {}).values()
        return cls(
            str(raw["Id"]),
            str(raw.get("Name") or ""),
            str(raw.get("Driver") or ""),
            str(raw.get("Scope") or ""),
            tuple(str(c["Subnet"]) for c in configs if c.get("Subnet")),
            tuple(str(c["Gateway"]) for c in configs if c.get("Gateway")),
            bool(raw.get("Internal")),
            bool(raw.get("Attachable")),
            epoch_seconds(raw.get("Created")),
            tuple(sorted(str(c.get("Name") or "") for c in attached)),
        )


class NetworkCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""

    async def networks(self) -> list[NetworkInfo]:
        """Every network, each with the containers attached to it.

        The list leaves `Containers` empty, so each network is inspected (one request each).
        """
        raw = await self.http.get_json("/networks", "listing networks")
        found = []
        for item in raw:
            full = await self.http.get_json(f"/networks/{item['Id']}", f"inspecting network {item['Name']}")
            found.append(NetworkInfo.from_api(full))
        return found
