"""Host probing against the real engines the tests start, and against sockets that do not answer."""

import asyncio
import socket
from pathlib import Path

import pytest
from engines.dockerd import DockerEngine
from engines.lxd import LxdEngine

from backends.config import Config, HostConfig
from backends.hosts import HostSession, probe_host
from tui.app import BerthApp
from tui.widgets.host_header import HostHeader


@pytest.mark.engines
async def test_local_host_with_both_engines_is_online(dockerd: DockerEngine, lxd: LxdEngine) -> None:
    host = HostConfig("local", docker_socket=str(dockerd.socket), lxd_socket=str(lxd.socket))
    state = await probe_host(HostSession(host))
    assert state.state == "online"
    by_engine = {e.engine: e for e in state.engines}
    assert by_engine["docker"].state == "up" and by_engine["docker"].socket == str(dockerd.socket)
    assert by_engine["lxd"].state == "up" and by_engine["lxd"].socket == str(lxd.socket)
    assert all(e.latency_ms is not None and e.latency_ms >= 0 for e in state.engines)


@pytest.mark.engines
async def test_docker_host_env_is_honoured(dockerd: DockerEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", dockerd.url)
    state = await probe_host(HostSession(HostConfig("local")))
    docker = next(e for e in state.engines if e.engine == "docker")
    assert (docker.state, docker.socket) == ("up", str(dockerd.socket))


async def test_a_socket_that_never_answers_is_down_not_hung(tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen()  # accepts connections but never replies
        host = HostConfig("local", docker_socket=str(path), lxd_socket=str(tmp_path / "none.sock"))
        state = await asyncio.wait_for(probe_host(HostSession(host)), 10)
    docker, lxd = state.engines
    assert (docker.state, docker.detail) == ("down", "no answer")
    assert lxd.state == "absent" and "none.sock" in lxd.detail
    assert state.state == "offline"


@pytest.mark.engines
async def test_header_shows_real_engines_up(dockerd: DockerEngine, lxd: LxdEngine, tmp_path: Path) -> None:
    config = Config(
        hosts=[HostConfig("local", docker_socket=str(dockerd.socket), lxd_socket=str(lxd.socket))],
        path=tmp_path / "config.toml",
    )
    app = BerthApp(config)
    async with app.run_test(size=(120, 36)) as pilot:
        header = app.main_screen.query_one(HostHeader)
        for _ in range(100):
            if header.state is not None:
                break
            await pilot.pause(0.05)
        rendered = str(header.render())
    assert "● online" in rendered
    assert "docker up" in rendered and "lxd up" in rendered
