"""The console over SSH hosts: host key dialog, reconnecting header, the all-hosts view."""

import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from engines.sshd import SshServer, free_port
from ssh_helpers import SshHost, known_hosts
from test_containers_pane import SIZE, pane, until
from test_ssh_hosts import fingerprint_of

from backends.audit import read_audit
from backends.config import Config, HostConfig
from tui.app import BerthApp
from tui.screens.confirm import ConfirmScreen
from tui.widgets.host_header import HostHeader

pytestmark = pytest.mark.engines


def console(tmp_path: Path, *hosts: HostConfig, start: str | None = None) -> BerthApp:
    return BerthApp(Config(hosts=list(hosts), path=tmp_path / "config.toml"), start)


def header_text(app: BerthApp) -> str:
    return str(app.main_screen.query_one(HostHeader).render())


async def test_unknown_host_key_asks_with_the_fingerprint_and_records_it(
    sshd: SshServer, dockerd: DockerEngine, spawn: Spawn, ssh_host: SshHost, tmp_path: Path
) -> None:
    c = spawn()
    host = ssh_host(sshd, trusted=False, docker_socket=str(dockerd.socket))
    app = console(tmp_path, host)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the host key question")
        shown = " ".join(str(label.render()) for label in app.screen.query("Label, Static"))
        assert fingerprint_of(sshd) in shown and "not in known_hosts" in shown
        assert not known_hosts().exists()
        await pilot.press("y")
        await until(pilot, lambda: "● online" in header_text(app), what="online after trusting")
        await until(pilot, lambda: c.id in pane(app).table.rows, what="the containers through the tunnel")
    assert f"[127.0.0.1]:{sshd.port}" in known_hosts().read_text()


async def test_header_shows_reconnecting_then_recovers(
    sshd: SshServer, dockerd: DockerEngine, spawn: Spawn, ssh_host: SshHost, tmp_path: Path
) -> None:
    c = spawn()
    app = console(tmp_path, ssh_host(sshd, docker_socket=str(dockerd.socket)))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: c.id in pane(app).table.rows, what="the first list")
        await until(pilot, lambda: "● online" in header_text(app))
        (child,) = sshd.session_children()
        os.kill(child, signal.SIGKILL)
        await until(pilot, lambda: "reconnecting" in header_text(app), what="reconnecting")
        took = await until(pilot, lambda: "● online" in header_text(app), timeout=10, what="back online")
        assert took < 10
        # The pane follows too: a container made after the reconnect shows up.
        later = spawn()
        await until(pilot, lambda: later.id in pane(app).table.rows, timeout=15, what="a row after reconnect")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung host)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


async def test_all_hosts_view_fills_in_live_hosts_while_dead_ones_show_their_error(
    make_sshd: Callable[..., SshServer],
    dockerd: DockerEngine,
    spawn: Spawn,
    ssh_host: SshHost,
    silent_port: int,
    tmp_path: Path,
) -> None:
    c = spawn()
    live = [ssh_host(make_sshd(), f"web-{i}", docker_socket=str(dockerd.socket)) for i in (1, 2, 3)]
    dead = HostConfig("dead", f"ssh://root@127.0.0.1:{free_port()}")
    hung = HostConfig("hung", f"ssh://root@127.0.0.1:{silent_port}")
    local = HostConfig("local", docker_socket=str(dockerd.socket))
    app = console(tmp_path, local, *live, dead, hung, start="all")
    async with app.run_test(size=(170, 40)) as pilot:
        table = pane(app).table
        expected = {f"{h.name}/{c.id}" for h in (local, *live)}
        took = await until(pilot, lambda: expected <= set(table.rows), what="every live host's row")
        # The hung host is still connecting: it held nobody up.
        assert took < 5 and "hung/!" not in table.rows
        await until(pilot, lambda: "dead/!" in table.rows, what="the dead host's error row")
        assert "Connection refused" in str(table.rows["dead/!"].cells["error"])  # STATUS has its start
        assert table.rows[f"web-2/{c.id}"].cells["host"] == "web-2"
        await until(pilot, lambda: "4/6 online" in header_text(app), what="the fleet in the header")
        assert "all hosts" in header_text(app)

        # Actions go to the row's own host: stop the container through web-3's tunnel.
        table.set_filter(c.name)
        assert table.move_cursor_to(f"web-3/{c.id}")
        await pilot.press("s")
        await until(pilot, lambda: c.reload() or c.status == "exited", timeout=20, what="stopped")
        await until(
            pilot,
            lambda: all(table.rows[k].cells["state"].plain.startswith("exited") for k in expected),
            what="every host's row to say so (they share one engine here)",
        )
    assert [(r["host"], r["action"]) for r in read_audit()][-1] == ("web-3", "container.stop")
