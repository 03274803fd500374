"""Shared fixtures: every test gets its own XDG folders; engines come from tests/engines/."""

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from docker_helpers import backend, sdk, spawn  # noqa: F401  (fixtures)
from engines.fixtures import (  # noqa: F401  (pytest finds fixtures and hooks by name here)
    docker_busybox,
    dockerd,
    lxd,
    make_dockerd,
    make_sshd,
    pytest_terminal_summary,
    sshd,
)

if TYPE_CHECKING:
    from backends.config import Config


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Point every XDG location at a fresh folder and hide the user's engine settings."""
    home = tmp_path_factory.mktemp("home")
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state"), ("XDG_DATA_HOME", "data")):
        monkeypatch.setenv(var, str(home / sub))
    for var in ("BERTH_CONFIG", "DOCKER_HOST", "LXD_DIR", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    yield home


@pytest.fixture
def offline_config(tmp_path: Path) -> "Config":
    """An inventory whose local engines are absent (sockets in an empty folder) plus an SSH host.

    The app under test then never touches an engine it did not start, and the header is predictable.
    """
    from backends.config import Config, HostConfig

    nowhere = Path("/nonexistent/berth-test")  # a fixed path keeps snapshots and messages stable
    return Config(
        hosts=[
            HostConfig(
                "local", docker_socket=str(nowhere / "docker.sock"), lxd_socket=str(nowhere / "lxd.sock")
            ),
            HostConfig("web-1", "ssh://ops@127.0.0.1:2222"),
        ],
        path=tmp_path / "config.toml",
    )
