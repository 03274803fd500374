"""Where things are, as people write it: host URLs (`local`, `ssh://user@host:port`), listen
addresses (`127.0.0.1:4080`), IP addresses (`0.0.0.0`, `::1`), port numbers and protocols; one
reader each for the command line, the config file and the forms."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from backends.errors import Invalid
from backends.units import Grammar, quoted

_SSH_URL = re.compile(
    r"^ssh://(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
    r"(?::(?P<port>\d{1,5}))?/?$",
    re.ASCII,
)
# An empty host is the loopback; IPv6 goes in brackets, though the last colon alone ends it too.
_LISTEN = re.compile(
    r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]*|[0-9A-Fa-f:.]*):(?P<port>\d{1,5})$", re.ASCII
)


@dataclass
class SshTarget:
    """The parts of an `ssh://user@host:port` URL."""

    user: str | None
    host: str
    port: int | None


def host_url_problem(url: str) -> str | None:
    """What is wrong with a host URL, as a fragment the config's errors put after the key
    ("expected local or ssh://user@host[:port], got 'x'"); None for a good one."""
    if url == "local":
        return None
    match = _SSH_URL.match(url)
    if match is None:
        return f"expected local or ssh://user@host[:port], got {url!r}"
    if match["port"] and not 0 < int(match["port"]) < 65536:
        return f"port {match['port']} is out of range (1-65535)"
    return None


def parse_host_url(url: str) -> SshTarget | None:
    """The SSH user, host and port of a host URL; None for `local`; Invalid otherwise."""
    problem = host_url_problem(url)
    if problem:
        raise Invalid(f"Not a host URL: {problem}.", HOST_URL.hint)
    match = _SSH_URL.match(url)
    if match is None:
        return None
    port = match["port"]
    return SshTarget(match["user"], match["host"].strip("[]"), int(port) if port else None)


HOST_URL: Grammar[SshTarget | None] = Grammar(
    "host URL", ("local", "ssh://user@host", "ssh://user@host:2222"), parse_host_url
)
"""A host: `local` (this machine) or `ssh://[user@]host[:port]` (IPv6 in brackets)."""


def parse_port(text: str) -> int:
    """A TCP/UDP port number, 1 to 65535; Invalid otherwise."""
    written = text.strip()
    # Five digits at most before int(): Python refuses to read over 4300 (a ValueError, no sentence).
    if not (written.isascii() and written.isdecimal()) or len(written) > 5 or not 0 < int(written) < 65536:
        raise PORT.refuse(text)
    return int(written)


PORT: Grammar[int] = Grammar("port number", ("22", "2222", "8080"), parse_port, "from 1 to 65535")
"""A TCP or UDP port number."""


def parse_protocol(text: str) -> str:
    """`tcp` or `udp` (any case); empty is tcp; Invalid otherwise."""
    written = text.strip().lower() or "tcp"
    if written not in ("tcp", "udp"):
        raise PROTOCOL.refuse(text)
    return written


PROTOCOL: Grammar[str] = Grammar("protocol", ("tcp", "udp"), parse_protocol)
"""The protocol of a port forward."""


def parse_listen(text: str) -> tuple[str, int]:
    """(host, port) of an address to listen on, `HOST:PORT` (IPv6 in brackets; no host: the
    loopback; port 0: any free one); Invalid otherwise."""
    match = _LISTEN.match(text.strip())
    if match is None or int(match["port"]) > 65535:
        raise LISTEN.refuse(text)
    return match["host"].strip("[]") or "127.0.0.1", int(match["port"])


LISTEN: Grammar[tuple[str, int]] = Grammar(
    "listen address", ("127.0.0.1:4080", "0.0.0.0:4080", "[::1]:4080"), parse_listen
)
"""Where a server listens."""


def parse_ip_address(text: str) -> str:
    """An IPv4 or IPv6 address (`0.0.0.0`, `127.0.0.1`, `::1`), as written; Invalid otherwise."""
    written = text.strip()
    try:
        ipaddress.ip_address(written)
    except ValueError:
        # Not refuse(): its "Not a …" would read "a IP address".
        raise Invalid(f"Not an IP address: {quoted(text)}.", IP_ADDRESS.hint) from None
    return written


IP_ADDRESS: Grammar[str] = Grammar("IP address", ("0.0.0.0", "127.0.0.1", "::1"), parse_ip_address)
"""A host's address to listen on, by number (a forward's listen address)."""
