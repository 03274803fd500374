"""A Docker network's settings as `docker network create` takes them: its name, driver, subnet
and gateway; one reader each for the command line's options and the forms' fields."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from backends.errors import Invalid
from backends.parse_addresses import parse_ip_address
from backends.parse_container import docker_name
from backends.units import Grammar, quoted

NETWORK_NAME = docker_name("network name", ("backend", "app_net", "web.1"), shortest=1)
"""What `docker network create NAME` takes."""


def parse_subnet(text: str) -> str:
    """A subnet in CIDR notation (`10.20.0.0/24`, `fd00:20::/64`), written as the engine
    writes it; Invalid otherwise (an address with host bits set is refused: it is not a subnet)."""
    written = text.strip()
    if "/" not in written:
        raise SUBNET.refuse(text, "it needs a prefix length, like /24")
    try:
        return str(ipaddress.ip_network(written))
    except ValueError as exc:
        why = "host bits are set" if "host bits" in str(exc) else ""
        raise SUBNET.refuse(text, why) from None


SUBNET: Grammar[str] = Grammar(
    "subnet",
    ("10.20.0.0/24", "172.30.0.0/16", "fd00:20::/64"),
    parse_subnet,
    "an address and a prefix length, in CIDR notation",
)
"""The range of addresses a network hands out."""


def parse_gateway(text: str) -> str:
    """A gateway's address (`10.20.0.1`), as written; Invalid otherwise."""
    try:
        return parse_ip_address(text)
    except Invalid as exc:
        raise Invalid(exc.message, GATEWAY.hint) from None


GATEWAY: Grammar[str] = Grammar("gateway address", ("10.20.0.1", "172.30.0.1", "fd00:20::1"), parse_gateway)
"""The address of a network's gateway: inside its subnet."""


def check_gateway(subnet: str | None, gateway: str | None) -> None:
    """Refuse a gateway without a subnet, or outside it (both as their grammars read them)."""
    if not gateway:
        return
    if not subnet:
        raise Invalid("A gateway needs a subnet to be in.", "Give the subnet too, or no gateway.")
    network = ipaddress.ip_network(subnet)
    if ipaddress.ip_address(gateway) not in network:
        first = next(iter(network.hosts()), network.network_address)
        raise Invalid(
            f"The gateway {quoted(gateway)} is not in the subnet {subnet}.",
            f"Give an address in it, like {first}, or none (the engine takes its first address).",
        )


DRIVERS = ("bridge", "ipvlan", "macvlan", "overlay")
"""The network drivers every engine has (`host` and `null` have one network each, made by it)."""
NOT_CREATED = ("host", "null")
"""Drivers an engine lists but makes no second network of."""


def network_driver(drivers: Sequence[str]) -> Grammar[str]:
    """The network drivers of one engine (DRIVERS, and any plugin's it lists) as an input kind."""
    known = tuple(sorted({*DRIVERS, *drivers} - set(NOT_CREATED)))

    def parse(text: str) -> str:
        written = text.strip()
        if written not in known:
            raise grammar.refuse(text)
        return written

    grammar = Grammar("network driver", known, parse)
    return grammar


NETWORK_DRIVER: Grammar[str] = network_driver(DRIVERS)
"""A driver every engine has (the one to use when the engine's own list was not read)."""
