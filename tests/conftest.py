"""Shared fixtures: every test gets its own XDG folders; engines come from tests/engines/."""

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from broker_helpers import broker_with_provider, procs  # noqa: F401  (fixtures)
from docker_helpers import backend, sdk, spawn  # noqa: F401  (fixtures)
from engines.fixtures import (  # noqa: F401  (pytest finds fixtures and hooks by name here)
    docker_busybox,
    dockerd,
    lxd,
    make_dockerd,
    make_sshd,
    pytest_terminal_summary,
    registry,
    registry_busybox,
    sshd,
)
from ssh_helpers import ssh_host  # noqa: F401  (fixture)
from tmux_helpers import tmux  # noqa: F401  (fixture)
from wasm_helpers import wasm_programs  # noqa: F401  (fixture)

if TYPE_CHECKING:
    from backends.config import Config


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Point HOME and every XDG location at a fresh folder; hide the user's engine and SSH settings.

    With HOME moved, `~/.ssh` (config, known_hosts) is the test's own, and no ssh-agent is used.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_RUNTIME_DIR", "run"),
    ):
        (home / sub).mkdir(mode=0o700)
        monkeypatch.setenv(var, str(home / sub))
    for var in ("BERTH_CONFIG", "DOCKER_HOST", "LXD_DIR", "NO_COLOR", "SSH_AUTH_SOCK"):
        monkeypatch.delenv(var, raising=False)
    yield home


@pytest.fixture
def offline_config(tmp_path: Path) -> "Config":
    """An inventory whose local engines are absent (sockets in an empty folder) plus an SSH host.

    The app under test then never touches an engine it did not start, and the header is predictable.
    """
    from backends.config import BrokerConfig, Config, HostConfig

    nowhere = Path("/nonexistent/berth-test")  # a fixed path keeps snapshots and messages stable
    return Config(
        hosts=[
            HostConfig(
                "local", docker_socket=str(nowhere / "docker.sock"), lxd_socket=str(nowhere / "lxd.sock")
            ),
            HostConfig("web-1", "ssh://ops@127.0.0.1:2222"),
        ],
        broker=BrokerConfig(listen="127.0.0.1:0"),  # the embedded broker on a free port
        path=tmp_path / "config.toml",
    )
