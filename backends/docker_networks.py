"""Docker networks: list, inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from backends.audit import audited
from backends.docker_calls import EngineCalls
from backends.docker_logs import epoch_seconds
from backends.errors import BerthError, Conflict, Denied, NotFound
from backends.parse_networks import (
    DRIVERS,
    NETWORK_NAME,
    SUBNET,
    check_gateway,
    network_driver,
)
from backends.units import Grammar

PREDEFINED = ("bridge", "host", "none")
"""The networks the engine makes itself; it removes none of them."""
UNJOINABLE = ("host", "none")
"""The engine's own networks no container is connected to or disconnected from by hand."""


@dataclass(frozen=True)
class NetworkInfo:
    """One network (an entry of `GET /networks`); `containers`: the names of those attached,
    stopped ones too (they join it again when they start)."""

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
    def from_api(cls, raw: dict[str, Any], containers: Iterable[str] = ()) -> NetworkInfo:
        """Build from the Engine API's list or inspect object and the names of those attached."""
        configs = (raw.get("IPAM") or {}).get("Config") or ()
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
            tuple(sorted(containers)),
        )

    @property
    def addresses(self) -> str:
        """Its subnets as people read them: "10.20.0.0/24 via 10.20.0.1, fd00::/64"."""
        gateways = self.gateways + ("",) * len(self.subnets)
        return ", ".join(f"{s} via {g}" if g else s for s, g in zip(self.subnets, gateways, strict=False))

    @property
    def flags(self) -> str:
        """ "internal" and "attachable", where they apply."""
        return " ".join(f for f, on in (("internal", self.internal), ("attachable", self.attachable)) if on)

    @property
    def predefined(self) -> bool:
        """One of the engine's own networks (bridge, host, none), which cannot be removed."""
        return self.name in PREDEFINED

    @property
    def prunable(self) -> bool:
        """A network of the user's, on this host only, that no container is attached to."""
        return not self.containers and not self.predefined and self.scope == "local"

    def to_json(self, host: str) -> dict[str, Any]:
        """The object `berth networks --json` prints."""
        return {
            "host": host,
            "id": self.id,
            "name": self.name,
            "driver": self.driver,
            "scope": self.scope,
            "subnets": list(self.subnets),
            "gateways": list(self.gateways),
            "internal": self.internal,
            "attachable": self.attachable,
            "containers": list(self.containers),
            "created": self.created,
        }


def attachments(
    containers: Iterable[dict[str, Any]], networks: Iterable[dict[str, Any]]
) -> dict[str, list[str]]:
    """Network id -> the names of the containers attached, from the entries of `GET
    /containers/json`, whose `NetworkSettings.Networks` say where each is, stopped or not.

    An entry names its network by id once the container has started; before (and for the
    default bridge of an engine that has none), by name only.
    """
    ids = {str(n.get("Name")): str(n["Id"]) for n in networks}
    found: dict[str, list[str]] = {}
    for container in containers:
        name = str((container.get("Names") or ["?"])[0]).lstrip("/")
        for network, settings in ((container.get("NetworkSettings") or {}).get("Networks") or {}).items():
            network_id = (settings or {}).get("NetworkID") or ids.get(network)
            if network_id:
                found.setdefault(str(network_id), []).append(name)
    return found


def refused_removal(network: NetworkInfo, host: str) -> BerthError | None:
    """Why `network` may not be removed (one of the engine's own, or containers attached), or None."""
    if network.predefined:
        return Denied(f"{network.name} is one of Docker's own networks on {host} and cannot be removed.")
    if network.containers:
        return Conflict(
            f"Network {network.name} on {host} has {', '.join(network.containers)} attached: "
            "nothing was removed.",
            "Disconnect them first (x on the network).",
            "Disconnect them first with `berth network disconnect`.",
        )
    return None


def refused_joining(network: NetworkInfo, host: str) -> BerthError | None:
    """Why no container may be connected to or disconnected from `network` (Docker's own `host`
    and `none`: a container is put on those when made, or not at all), or None."""
    if network.name in UNJOINABLE:
        return Denied(
            f"{network.name} is one of Docker's own networks on {host}: "
            "containers are not connected to it or disconnected from it by hand."
        )
    return None


def overlapping(subnet: str, networks: Iterable[NetworkInfo]) -> list[str]:
    """The names of the networks with a subnet that overlaps `subnet`."""
    wanted = ipaddress.ip_network(subnet)
    return sorted(
        n.name
        for n in networks
        if any(
            ipaddress.ip_network(s).version == wanted.version and ipaddress.ip_network(s).overlaps(wanted)
            for s in n.subnets
        )
    )


class NetworkCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""

    async def networks(self) -> list[NetworkInfo]:
        """Every network, each with the containers attached to it: two requests, the networks
        and the containers (the network list says of neither; an inspect each would be 1+N)."""
        raw, containers = await asyncio.gather(
            self.http.get_json("/networks", "listing networks"),
            self.http.get_json("/containers/json", "listing containers", {"all": 1}),
        )
        attached = attachments(containers, raw)
        return [NetworkInfo.from_api(item, attached.get(str(item["Id"]), ())) for item in raw]

    async def network(self, name_or_id: str) -> NetworkInfo:
        """One network by name, id or id prefix, with the containers attached to it now."""
        raw, containers = await asyncio.gather(
            self.inspect_network(name_or_id),
            self.http.get_json("/containers/json", "listing containers", {"all": 1}),
        )
        return NetworkInfo.from_api(raw, attachments(containers, [raw]).get(str(raw["Id"]), ()))

    async def inspect_network(self, name_or_id: str) -> dict[str, Any]:
        """The network's full inspect document."""
        result: dict[str, Any] = await self.http.get_json(
            f"/networks/{name_or_id}", f"inspecting network {name_or_id}"
        )
        return result

    async def network_drivers(self) -> Grammar[str]:
        """The drivers a network can be made with here (the usual ones and any plugin's), as the
        input kind a form's Driver field reads."""
        info = await self.http.get_json("/info", "asking its network drivers")
        return network_driver((info.get("Plugins") or {}).get("Network") or ())

    async def create_network(
        self,
        name: str,
        driver: str = "bridge",
        *,
        subnet: str | None = None,
        gateway: str | None = None,
        internal: bool = False,
        attachable: bool = False,
    ) -> str:
        """Make a network; its id. Each setting is read by its grammar first (a driver other than
        the usual ones must be one the engine lists), so a bad one costs no request to make it."""
        name = NETWORK_NAME.parse(name)
        subnet = SUBNET.parse(subnet) if subnet else None
        check_gateway(subnet, gateway)
        if driver not in DRIVERS:
            (await self.network_drivers()).parse(driver)
        body: dict[str, Any] = {
            "Name": name,
            "Driver": driver,
            "CheckDuplicate": True,
            "Internal": internal,
            "Attachable": attachable,
        }
        if subnet:
            body["IPAM"] = {"Config": [{"Subnet": subnet, **({"Gateway": gateway} if gateway else {})}]}
            body["EnableIPv6"] = ipaddress.ip_network(subnet).version == 6
        settings = {"driver": driver, "subnet": subnet, "gateway": gateway, "internal": internal}
        with audited(self.host_name, "network.create", [name], attachable=attachable, **settings):
            try:
                made = await self.http.post("/networks/create", f"creating network {name}", body=body)
            except BerthError as exc:
                # "Pool overlaps with other one on this address space": say with which.
                if not subnet or "overlaps" not in exc.message:
                    raise
                others = overlapping(subnet, await self.networks())
                raise Conflict(
                    f"The subnet {subnet} overlaps a network on {self.host_name}"
                    + (f" ({', '.join(others)})." if others else "."),
                    "Give another subnet, or none for the engine to pick a free one.",
                ) from None
        return str(made["Id"])

    async def remove_network(self, name_or_id: str) -> NetworkInfo:
        """Remove a network (the one removed); refused for the engine's own and while containers,
        stopped ones too, are attached (naming them): the engine would leave those unable to start."""
        network = await self.network(name_or_id)
        if refusal := refused_removal(network, self.host_name):
            raise refusal
        with audited(self.host_name, "network.remove", [network.id], names=[network.name]):
            await self.http.delete(f"/networks/{network.id}", f"removing network {network.name}")
        return network

    async def _joinable(self, network: str, container: str, *, connect: bool) -> NetworkInfo:
        """The network, unless it is one no container joins or leaves by hand, or `container`
        is attached already (to connect): one sentence, before asking the engine. Whether it is
        attached (to disconnect) is the engine's to say: `container` may be an id, and the
        network lists names."""
        found = await self.network(network)
        if refusal := refused_joining(found, self.host_name):
            raise refusal
        if connect and container in found.containers:
            raise Conflict(_attachment(container, found.name, attached=True))
        return found

    async def connect_network(self, network: str, container: str, *, aliases: Sequence[str] = ()) -> None:
        """Attach a container to a network (both by name or id), known there also by `aliases`."""
        found = await self._joinable(network, container, connect=True)
        body: dict[str, Any] = {"Container": container}
        if aliases:
            body["EndpointConfig"] = {"Aliases": list(aliases)}
        with audited(
            self.host_name, "network.connect", [network], container=container, aliases=list(aliases)
        ):
            try:
                await self.http.post(
                    f"/networks/{found.id}/connect", f"connecting {container} to network {network}", body=body
                )
            except BerthError as exc:  # named by id, or attached since the check
                if "already exists in network" not in exc.message:
                    raise
                raise Conflict(_attachment(container, found.name, attached=True)) from None

    async def disconnect_network(self, network: str, container: str, *, force: bool = False) -> None:
        """Detach a container from a network (both by name or id)."""
        found = await self._joinable(network, container, connect=False)
        with audited(self.host_name, "network.disconnect", [network], container=container, force=force):
            try:
                await self.http.post(
                    f"/networks/{found.id}/disconnect",
                    f"disconnecting {container} from network {network}",
                    body={"Container": container, "Force": force},
                )
            except BerthError as exc:  # named by id, or detached since the check
                if "is not connected to" not in exc.message:
                    raise
                raise Conflict(_attachment(container, found.name, attached=False)) from None

    async def unused_networks(self) -> list[NetworkInfo]:
        """What a prune removes: the user's networks of this host that no container is attached to."""
        return sorted((n for n in await self.networks() if n.prunable), key=lambda n: n.name)

    async def prune_networks(self, previewed: Iterable[NetworkInfo]) -> tuple[list[str], list[str]]:
        """Remove exactly the `previewed` networks (from `unused_networks`) that are still unused:
        (the names removed, the names kept because a container was attached meanwhile or they went)."""
        wanted = {n.id: n.name for n in previewed}
        now = {n.id: n for n in await self.networks()}
        removed: list[str] = []
        kept: list[str] = []
        for network_id, name in wanted.items():
            network = now.get(network_id)
            if network is None or not network.prunable:
                kept.append(name)
                continue
            try:
                with audited(self.host_name, "network.remove", [network_id], names=[name], prune=True):
                    await self.http.delete(f"/networks/{network_id}", f"removing network {name}")
            except (Conflict, Denied, NotFound):  # a container joined it, or it went, since the read
                kept.append(name)
            else:
                removed.append(name)
        return removed, kept


def _attachment(container: str, network: str, *, attached: bool) -> str:
    """The sentence for one attached already (to connect) or not (to disconnect)."""
    return f"{container} is {'already' if attached else 'not'} attached to {network}."
