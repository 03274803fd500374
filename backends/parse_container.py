"""A container's settings as `docker run` takes them: its name, restart policy, CPUs, published
ports (`-p`) and mounts (`-v`), and its command; one reader each for the command line's options
and the forms' fields (memory is units.SIZE, env parse_pairs.ENV_PAIR and ENV)."""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from backends.errors import Invalid
from backends.parse_addresses import parse_port
from backends.units import Grammar, quoted

T = TypeVar("T")

MAX_NAME = 128
"""Longest container or volume name taken (Docker sets none; a name is read in tables)."""
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", re.ASCII)  # Docker's own


def docker_name(kind: str, examples: tuple[str, ...], shortest: int) -> Grammar[str]:
    """The grammar of a name Docker gives something (`kind`: "container name"): a letter or
    digit, then letters, digits, `_ . -`; `shortest` to MAX_NAME characters; read stripped."""

    def parse(text: str) -> str:
        written = text.strip()
        if len(written) > MAX_NAME:
            raise grammar.refuse(text, f"at most {MAX_NAME} characters")
        if len(written) < shortest or not _NAME.fullmatch(written):
            raise grammar.refuse(text)
        return written

    grammar = Grammar(kind, examples, parse, "a letter or digit, then letters, digits, _ . or -")
    return grammar


CONTAINER_NAME = docker_name("container name", ("web", "db-1", "my_app.2"), shortest=2)
"""What `docker run --name` takes."""


class RestartPolicy(NamedTuple):
    """A restart policy as the Engine API has it: `RestartPolicy.Name`, `.MaximumRetryCount`."""

    name: str
    retries: int
    """The most restarts `on-failure` makes (0: no limit); 0 for the other policies."""

    def to_api(self) -> dict[str, Any]:
        """The Engine API's `RestartPolicy` object (create and update take the same)."""
        return {"Name": self.name, "MaximumRetryCount": self.retries}


MAX_RETRIES = 10_000
"""The most retries `on-failure:N` takes (past that, no limit is meant: write on-failure)."""
_POLICIES = ("no", "always", "unless-stopped", "on-failure")


def parse_restart_policy(text: str) -> RestartPolicy:
    """(policy, max retries) of `no`, `always`, `unless-stopped`, `on-failure` or
    `on-failure:N` (any case); Invalid otherwise."""
    name, sep, count = text.strip().lower().partition(":")
    if name not in _POLICIES or (sep and name != "on-failure"):
        raise RESTART_POLICY.refuse(text)
    if not sep:
        return RestartPolicy(name, 0)
    if not (count.isascii() and count.isdecimal() and len(count) <= 5) or int(count) > MAX_RETRIES:
        raise RESTART_POLICY.refuse(text, f"retries are a count from 0 to {MAX_RETRIES:,}")
    return RestartPolicy(name, int(count))


RESTART_POLICY: Grammar[RestartPolicy] = Grammar(
    "restart policy",
    ("no", "always", "unless-stopped", "on-failure:3"),
    parse_restart_policy,
    "on-failure[:N] retries at most N times",
)
"""When the engine restarts a container, as `docker run --restart` takes it."""


def written_restart_policy(policy: RestartPolicy) -> str:
    """`policy` as one writes it for RESTART_POLICY (`on-failure:3`, `always`); an engine's
    empty name is `no`."""
    name = policy.name or "no"
    return f"{name}:{policy.retries}" if name == "on-failure" and policy.retries else name


MAX_CPUS = 8192
"""The most CPUs a limit takes (Linux's largest usual NR_CPUS; the engine refuses more than its host has)."""
_CPUS = re.compile(r"(\d*)(?:\.(\d*))?", re.ASCII)
_NANO = 10**9


def parse_cpus(text: str) -> int:
    """NanoCpus (billionths of a CPU) in a number of CPUs as `docker run --cpus` takes it (`0.5`,
    `2`): from 0.01 to MAX_CPUS, in at most 9 decimals; Invalid otherwise."""
    match = _CPUS.fullmatch(text.strip())
    if match is None or not (match[1] or match[2]):
        raise CPUS.refuse(text)
    # Exact digits: a float or a Decimal of limited precision would round a tenth decimal away.
    whole, decimals = match[1].lstrip("0"), (match[2] or "").rstrip("0")
    if len(decimals) > 9:
        raise CPUS.refuse(text, "at most 9 decimals")
    nano = int(whole or 0) * _NANO + int(decimals.ljust(9, "0")) if len(whole) <= 5 else None
    if nano is None or not _NANO // 100 <= nano <= MAX_CPUS * _NANO:
        raise CPUS.refuse(text, f"from 0.01 to {MAX_CPUS}")
    return nano


CPUS: Grammar[int] = Grammar(
    "number of CPUs", ("0.5", "1", "2.5"), parse_cpus, f"from 0.01 to {MAX_CPUS}; the host's count at most"
)
"""How much CPU time a container may use, in CPUs."""


def written_cpus(nano_cpus: int) -> str:
    """NanoCpus as one writes them for CPUS (`0.5`, `2`)."""
    whole, decimals = divmod(nano_cpus, _NANO)
    return f"{whole}.{decimals:09d}".rstrip("0") if decimals else str(whole)


@dataclass(frozen=True)
class PortMapping:
    """One published port: the container's port and protocol, and where on the host it is
    reached (`host_ip` empty: every address; `host_port` None: a free port the engine picks)."""

    host_ip: str
    host_port: int | None
    container_port: int
    protocol: str

    @property
    def key(self) -> str:
        """The container's port as the Engine API names it: `80/tcp`."""
        return f"{self.container_port}/{self.protocol}"


_PROTOCOLS = ("tcp", "udp", "sctp")


def parse_port_mapping(text: str) -> PortMapping:
    """A port as `docker run -p` publishes it: `[IP:][HOST_PORT:]PORT[/PROTOCOL]` (`8080:80`,
    `127.0.0.1:8080:80`, `[::1]:8080:80`, `8080:80/udp`, `80`: any free host port; an IPv6
    address in brackets); Invalid otherwise."""
    written = text.strip()
    ports, _, protocol = written.partition("/")
    protocol = protocol.lower() if protocol else "tcp"
    if protocol not in _PROTOCOLS:
        raise PORT_MAPPING.refuse(text, "the protocol is tcp, udp or sctp")
    host_ip = ""
    if ports.startswith("["):
        address, bracket, ports = ports[1:].partition("]:")
        if not bracket or not _is_ip(address, 6):
            raise PORT_MAPPING.refuse(text, "an IPv6 address goes in brackets before :HOST_PORT:PORT")
        host_ip, parts = address, ports.split(":")
        if len(parts) != 2:
            raise PORT_MAPPING.refuse(text)
    else:
        parts = ports.split(":")
        if len(parts) == 3:
            host_ip = parts.pop(0)
            if not _is_ip(host_ip, 4):
                raise PORT_MAPPING.refuse(
                    text, f"{quoted(host_ip)} is no IPv4 address; IPv6 goes in brackets"
                )
        elif len(parts) not in (1, 2):
            raise PORT_MAPPING.refuse(text)
    host_port = _port_of(text, parts[0]) if len(parts) == 2 and (parts[0] or not host_ip) else None
    return PortMapping(host_ip, host_port, _port_of(text, parts[-1]), protocol)


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _port_of(mapping: str, text: str) -> int:
    try:
        if len(text) > 5:  # a long row of digits is no port, and int() refuses one past 4300
            raise Invalid(text)
        return parse_port(text)
    except Invalid:
        raise PORT_MAPPING.refuse(mapping, f"{quoted(text)} is no port from 1 to 65535") from None


PORT_MAPPING: Grammar[PortMapping] = Grammar(
    "port mapping",
    ("8080:80", "127.0.0.1:8080:80", "[::1]:8080:80", "5353:53/udp", "80"),
    parse_port_mapping,
    "[IP:][HOST_PORT:]PORT[/udp]; without HOST_PORT any free one",
)
"""A container port published on the host, as `docker run -p` takes it."""


@dataclass(frozen=True)
class Mount:
    """One mount of a container: a named volume, or a host path bound in (`kind` "bind")."""

    kind: str
    """`volume` or `bind`, as the Engine API's `Mounts[].Type` names them."""
    source: str
    """The volume's name, or the host's absolute path."""
    target: str
    """Where the container sees it: an absolute path."""
    read_only: bool


def parse_mount(text: str) -> Mount:
    """A mount as `docker run -v` takes it: `NAME:/path[:ro|rw]` (a named volume) or
    `/host/path:/path[:ro|rw]` (a bind), both paths absolute; Invalid otherwise."""
    parts = text.strip().split(":")
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        source, target, read_only = parts[0], parts[1], parts[2] == "ro"
    elif len(parts) == 2:
        source, target, read_only = parts[0], parts[1], False
    else:
        raise MOUNT.refuse(text)
    if "\0" in text:
        raise MOUNT.refuse(text)
    if not target.startswith("/") or target.strip("/") == "":
        raise MOUNT.refuse(text, "the container's path is absolute, and not /")
    if source.startswith("/"):
        return Mount("bind", source, target, read_only)
    if not 2 <= len(source) <= MAX_NAME or not _NAME.fullmatch(source):
        raise MOUNT.refuse(text, f"{quoted(source)} is no volume name, and a host path is absolute")
    return Mount("volume", source, target, read_only)


MOUNT: Grammar[Mount] = Grammar(
    "mount",
    ("data:/var/lib/data", "/srv/site:/usr/share/site:ro"),
    parse_mount,
    "VOLUME or /HOST/PATH, then :/PATH, then :ro if read-only",
)
"""A volume or host path mounted in a container, as `docker run -v` takes it."""


def listed(grammar: Grammar[T], examples: tuple[str, ...]) -> Grammar[tuple[T, ...]]:
    """A list of `grammar`'s kind in one field: one a line, or comma-separated; empty: none. A
    refusal is the item's own sentence."""

    def parse(text: str) -> tuple[T, ...]:
        return tuple(grammar.parse(item.strip()) for item in re.split(r"[,\n]", text) if item.strip())

    return Grammar(f"list of {grammar.kind}s", examples, parse, "one a line, or comma-separated")


PORT_MAPPINGS: Grammar[tuple[PortMapping, ...]] = listed(
    PORT_MAPPING, ("8080:80", "127.0.0.1:8080:80, 5353:53/udp")
)
"""The ports a form publishes."""

MOUNTS: Grammar[tuple[Mount, ...]] = listed(MOUNT, ("data:/data", "data:/data, /srv/in:/in:ro"))
"""The mounts a form gives a container."""


def parse_command(text: str) -> tuple[str, ...]:
    """The words of a command written as a shell would split it (`sh -c 'echo hi'`); empty: the
    image's own command."""
    try:
        return tuple(shlex.split(text))
    except ValueError as exc:  # an unclosed quote
        raise COMMAND.refuse(text, str(exc).lower()) from None


COMMAND: Grammar[tuple[str, ...]] = Grammar(
    "command", ("sleep 60", "sh -c 'echo hi'"), parse_command, "shell words; empty: the image's own"
)
"""What a container runs instead of its image's command."""
