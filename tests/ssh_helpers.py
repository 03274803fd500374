"""SSH hosts for tests: the test sshd as an inventory host whose key the test's HOME knows."""

from collections.abc import Callable
from pathlib import Path

import pytest
from engines.sshd import SshServer

from backends.config import HostConfig

SshHost = Callable[..., HostConfig]


def known_hosts() -> Path:
    """The known_hosts file berth reads in the test (HOME is the test's own)."""
    return Path("~/.ssh/known_hosts").expanduser()


def trust(server: SshServer) -> None:
    """Record `server`'s host key in ~/.ssh/known_hosts, as a user who had connected before."""
    path = known_hosts()
    path.parent.mkdir(mode=0o700, exist_ok=True)
    with path.open("a") as out:
        out.write(f"[{server.host}]:{server.port} {server.host_key_pub}\n")


@pytest.fixture
def ssh_host() -> SshHost:
    """`ssh_host(server, name="box", trusted=True, **sockets)`: an inventory host on a test sshd.

    It logs in with the server's client key; `docker_socket` / `lxd_socket` name the test engines'
    sockets (berth must never reach the machine's own Docker or LXD through the tunnel).
    """

    def make(server: SshServer, name: str = "box", trusted: bool = True, **sockets: str) -> HostConfig:
        if trusted:
            trust(server)
        return HostConfig(name, server.url, identity=str(server.client_key), **sockets)

    return make
